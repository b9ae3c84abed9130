"""Synthesise spoken emoji captions in several voice styles with espeak-ng.

espeak-ng (GPL-3.0-or-later) comes compiled, with its voice data, in the PyPI package
``espeakng-loader``; this module drives it through ``ctypes``: ``espeak_Initialize``
with synchronous output and a synth callback that collects the int16 samples
(22,050 Hz mono). No audio device, no subprocess, no network.

Speech is deterministic: the same text and style give the same samples, whatever was
synthesised before in the process. espeak-ng seeds its noise generator with
``espeak_ng_SetRandSeed``; three wave-generator variables that it never resets (the
pitch-flutter phase, the automatic gain and a cycle counter, all ``static`` in
``wavegen.c``) are put back to their start values before every utterance, found by
name in the library's ELF symbol table. Where that table is missing (a stripped
library) a warning says that the output then depends on the previous calls. The
Klatt voices (``+klatt*``) keep more state and are not deterministic; no style uses one.

On-disk layout added to an emoji dataset folder by :func:`build_speech_dataset`::

    audio/<KEY>__<style>.wav   16-bit PCM mono WAV at SAMPLE_RATE
    speech.parquet             one row per clip, columns in SPEECH_COLUMNS
    speech.json                builder version, styles, counts, timings, versions
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import struct
import sys
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from embedspace.errors import MissingDependencyError
from embedspace.recipes.emoji import load_emoji_dataset

logger = logging.getLogger(__name__)

BUILDER_VERSION = 2
"""Bumped whenever the builder's output changes for the same inputs."""

SAMPLE_RATE = 22_050
"""Sample rate (Hz) of espeak-ng's output."""

TABLE_NAME = "speech.parquet"
MANIFEST_NAME = "speech.json"
AUDIO_DIR = "audio"

SPEECH_COLUMNS = ("key", "caption", "style", "audio", "split", "heldout_voice")
"""Columns of ``speech.parquet``:

key            emoji key, as in ``emoji.parquet``.
caption        the spoken text (the emoji caption).
style          name of the VoiceStyle used.
audio          WAV path relative to the dataset folder, ``audio/<key>__<style>.wav``.
split          ``"train"`` or ``"test"``, copied from the emoji table.
heldout_voice  bool, True for styles meant to be kept out of audio training entirely.
"""


@dataclass(frozen=True)
class VoiceStyle:
    """How espeak-ng speaks: a voice and the prosody parameters applied to it.

    name: short style name, used in file names and as the ``style`` column.
    voice: espeak-ng voice name, ``language[+variant]`` (e.g. ``en-us+whisper``).
    rate: speaking rate in words per minute (espeak range 80-450, default 175).
    volume: amplitude in percent (0-200, default 100); loud speech may be limited.
    pitch: base pitch (0-100, default 50).
    pitch_range: intonation range (0-100, default 50; 0 is monotone).
    word_gap: extra pause between words in units of 10 ms (default 0).
    heldout: True if the trainer should never train on this style (a test of
        generalisation to an unseen voice).
    description: the manner in words, usable in a training target ("whispered");
        :data:`PLAIN_MANNER` for plain speech.
    in_demo: False for styles that only widen training (other speakers): the demo space leaves them out.
    """

    name: str
    voice: str
    rate: int = 175
    volume: int = 100
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0
    heldout: bool = False
    description: str = ""
    in_demo: bool = True


VOICE_STYLES: Mapping[str, VoiceStyle] = MappingProxyType(
    {
        style.name: style
        for style in (
            VoiceStyle("normal", "en-us", description="spoken"),
            VoiceStyle("whispered", "en-us+whisper", rate=160, volume=90, description="whispered"),
            VoiceStyle(
                "shouted",
                "en-us",
                rate=240,
                volume=190,
                pitch=80,
                pitch_range=80,
                description="shouted",
            ),
            VoiceStyle(
                "slow",
                "en-us",
                rate=105,
                volume=90,
                pitch=20,
                pitch_range=35,
                word_gap=3,
                description="spoken slowly",
            ),
            VoiceStyle("heldout", "en-us+f3", heldout=True, description="spoken"),
            # other speakers in a plain manner: without them every training voice is one
            # (male) speaker, and a new voice is far from anything heard in training
            VoiceStyle("speaker-f1", "en-us+f1", description="spoken", in_demo=False),
            VoiceStyle("speaker-f2", "en-us+f2", description="spoken", in_demo=False),
            VoiceStyle("speaker-f4", "en-us+f4", description="spoken", in_demo=False),
            VoiceStyle("speaker-m3", "en-us+m3", description="spoken", in_demo=False),
        )
    }
)
"""Named voice styles (read-only). ``heldout`` uses another voice (female variant f3)
in a normal manner and is meant to be left out of audio training. The ``speaker-*``
styles are further voices in a plain manner, for training only (not in the demo space)."""

PLAIN_MANNER = "spoken"
"""The description of styles whose clips are trained on the bare caption (no manner to name)."""


class SpeechSynthesizer:
    """Text to speech with espeak-ng, in the styles of a VoiceStyle table.

    The constructor only stores its arguments; the library is loaded and initialised
    on the first :meth:`synthesize` (or an explicit :meth:`load`). espeak-ng keeps
    process-wide state, so all instances in a process share one loaded library and take
    turns on it (a lock); use one instance per process.

    Args:
        styles: name → VoiceStyle; defaults to :data:`VOICE_STYLES`.
    """

    def __init__(self, styles: Mapping[str, VoiceStyle] | None = None) -> None:
        self.styles = dict(VOICE_STYLES if styles is None else styles)

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (22,050)."""
        return SAMPLE_RATE

    def load(self) -> SpeechSynthesizer:
        """Load and initialise espeak-ng now (otherwise done on first use). Returns self."""
        _engine()
        return self

    @property
    def deterministic(self) -> bool:
        """Whether each call's output is independent of earlier calls (see module docstring)."""
        return _engine().resets_state

    @property
    def espeak_version(self) -> str:
        """Version string of the loaded espeak-ng library."""
        return _engine().version

    def synthesize(self, text: str, style: str = "normal") -> tuple[np.ndarray, int]:
        """Speak ``text`` in ``style``.

        Returns:
            (samples, sample_rate): float32 mono samples (T,) in [-1, 1) and the rate in Hz.

        Raises:
            ValueError: for empty text or an unknown style.
            RuntimeError: if espeak-ng fails or produces no samples.
        """
        samples = self.synthesize_int16(text, style)
        return samples.astype(np.float32) / np.float32(32768.0), SAMPLE_RATE

    def synthesize_int16(self, text: str, style: str = "normal") -> np.ndarray:
        """Like :meth:`synthesize`, but the raw int16 samples (T,) at SAMPLE_RATE."""
        if not text or not text.strip():
            raise ValueError("text to synthesise is empty")
        voice_style = self.styles.get(style)
        if voice_style is None:
            raise ValueError(f"unknown voice style {style!r}; choose one of {sorted(self.styles)}")
        samples = _engine().speak(text, voice_style)
        if samples.size == 0:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r} in style {style!r}")
        return samples


@dataclass(frozen=True)
class SpeechDatasetSummary:
    """What :func:`build_speech_dataset` did.

    clips: WAV files written (rows of ``speech.parquet``).
    failed: (caption, style) pairs that could not be synthesised (logged, skipped).
    audio_seconds: total duration of the written clips.
    synthesis_seconds: time spent inside espeak-ng (excluding file writing).
    out_dir, table_path, manifest_path: where the dataset was written.
    """

    clips: int
    failed: int
    audio_seconds: float
    synthesis_seconds: float
    out_dir: Path
    table_path: Path
    manifest_path: Path

    @property
    def milliseconds_per_clip(self) -> float:
        """Mean synthesis time of one clip in milliseconds."""
        return 1000.0 * self.synthesis_seconds / max(self.clips, 1)


def build_speech_dataset(
    emoji_dir: Path,
    out_dir: Path | None = None,
    styles: Sequence[str] | None = None,
    progress: bool = True,
) -> SpeechDatasetSummary:
    """Speak every caption of a built emoji dataset in each style and write WAVs.

    Args:
        emoji_dir: folder written by :func:`~embedspace.recipes.emoji.build_emoji_dataset`.
        out_dir: where ``audio/`` and ``speech.parquet`` go; defaults to ``emoji_dir``.
        styles: names from :data:`VOICE_STYLES`; defaults to all of them.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`SpeechDatasetSummary`. The same inputs give byte-identical WAVs.

    Raises:
        FileNotFoundError: if ``emoji_dir`` holds no emoji dataset.
        ValueError: for an unknown style name.
    """
    import soundfile
    from tqdm.auto import tqdm

    emoji_dir = Path(emoji_dir)
    out_dir = Path(out_dir) if out_dir is not None else emoji_dir
    style_names = list(VOICE_STYLES) if styles is None else list(styles)
    unknown = [name for name in style_names if name not in VOICE_STYLES]
    if unknown:
        raise ValueError(f"unknown voice styles {unknown}; choose from {list(VOICE_STYLES)}")

    emoji_frame = load_emoji_dataset(emoji_dir)
    audio_dir = out_dir / AUDIO_DIR
    audio_dir.mkdir(parents=True, exist_ok=True)
    synthesizer = SpeechSynthesizer().load()
    if not synthesizer.deterministic:
        logger.warning("this espeak-ng build cannot be reset: WAVs depend on the build order")

    rows: list[dict[str, object]] = []
    failed = 0
    synthesis_seconds = 0.0
    total_samples = 0
    jobs = [
        (key, caption, split, style)
        for key, caption, split in emoji_frame[["key", "caption", "split"]].itertuples(index=False)
        for style in style_names
    ]
    for key, caption, split, style in tqdm(jobs, desc="speak captions", unit="clip", disable=not progress):
        started = time.perf_counter()
        try:
            samples = synthesizer.synthesize_int16(caption, style)
        except (RuntimeError, ValueError) as error:
            logger.warning("skip %s in style %s: %s", key, style, error)
            failed += 1
            continue
        finally:
            synthesis_seconds += time.perf_counter() - started
        audio_path = f"{AUDIO_DIR}/{key}__{style}.wav"
        soundfile.write(out_dir / audio_path, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        total_samples += samples.size
        rows.append(
            {
                "key": key,
                "caption": caption,
                "style": style,
                "audio": audio_path,
                "split": split,
                "heldout_voice": VOICE_STYLES[style].heldout,
            }
        )

    frame = pd.DataFrame(rows, columns=list(SPEECH_COLUMNS))
    frame["heldout_voice"] = frame["heldout_voice"].astype(bool)
    table_path = out_dir / TABLE_NAME
    frame.to_parquet(table_path, index=False)

    summary = SpeechDatasetSummary(
        clips=len(frame),
        failed=failed,
        audio_seconds=total_samples / SAMPLE_RATE,
        synthesis_seconds=synthesis_seconds,
        out_dir=out_dir,
        table_path=table_path,
        manifest_path=out_dir / MANIFEST_NAME,
    )
    manifest = {
        "builder": "embedspace.recipes.speech",
        "builder_version": BUILDER_VERSION,
        "emoji_dir": str(emoji_dir),
        "sample_rate": SAMPLE_RATE,
        "styles": [dataclasses.asdict(VOICE_STYLES[name]) for name in style_names],
        "counts": {"clips": summary.clips, "failed": summary.failed},
        "audio_seconds": round(summary.audio_seconds, 3),
        "synthesis_seconds": round(summary.synthesis_seconds, 3),
        "milliseconds_per_clip": round(summary.milliseconds_per_clip, 3),
        "deterministic": synthesizer.deterministic,
        "espeak_ng": synthesizer.espeak_version,
        "packages": {name: _version(name) for name in ("espeakng-loader", "soundfile")},
        "licence": "Speech synthesised with espeak-ng (GPL-3.0-or-later) from CLDR emoji names",
    }
    summary.manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    logger.info(
        "speech dataset in %s: %d clips (%.0f s of audio), %d failed, %.2f ms per clip",
        out_dir,
        summary.clips,
        summary.audio_seconds,
        summary.failed,
        summary.milliseconds_per_clip,
    )
    return summary


def speech_builder_version(data_dir: Path) -> int | None:
    """The builder version recorded in ``data_dir/speech.json`` (None when there is no speech dataset)."""
    manifest = Path(data_dir) / MANIFEST_NAME
    if not (Path(data_dir) / TABLE_NAME).is_file() or not manifest.is_file():
        return None
    return int(json.loads(manifest.read_text()).get("builder_version", 0))


def load_speech_dataset(out_dir: Path) -> pd.DataFrame:
    """Read ``speech.parquet`` of a built speech dataset: columns SPEECH_COLUMNS.

    Raises:
        FileNotFoundError: if no speech dataset was built in ``out_dir``.
    """
    table_path = Path(out_dir) / TABLE_NAME
    if not table_path.is_file():
        raise FileNotFoundError(
            f"No speech dataset at {table_path}; build it first with "
            "embedspace.recipes.speech.build_speech_dataset(emoji_dir)"
        )
    return pd.read_parquet(table_path)


# --- the espeak-ng binding ----------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4, "word_gap": 7}
_EE_OK = 0

# static ints of wavegen.c that survive between utterances, with their start values;
# the compiler names a function-local static "<name>.<number>"
_WAVEGEN_STATE = {"Flutter_ix": 0, "agc": 256, "cycle_count": 0}

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakEngine:
    """The loaded espeak-ng library: process-wide, created once by :func:`_engine`."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise MissingDependencyError("espeakng-loader", "data", "speech synthesis") from None
        library_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        try:
            library = ctypes.CDLL(library_path)
        except OSError as error:
            raise RuntimeError(f"cannot load espeak-ng from {library_path}: {error}") from error
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        library.espeak_SetSynthCallback.restype = None
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        library.espeak_Info.argtypes = [ctypes.c_void_p]
        library.espeak_Info.restype = ctypes.c_char_p
        library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        library.espeak_ng_SetRandSeed.restype = None

        rate = library.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate != SAMPLE_RATE:
            raise RuntimeError(
                f"espeak-ng did not initialise with data {data_path} (returned {rate}); "
                "reinstall espeakng-loader"
            )
        self.library = library
        self.version = library.espeak_Info(None).decode()
        self.lock = threading.Lock()
        self._chunks: list[bytes] = []
        # the CFUNCTYPE object must outlive every synthesis: keep it on the engine
        self._callback = _SynthCallback(self._collect)
        library.espeak_SetSynthCallback(self._callback)
        self._state_addresses = _static_addresses(library, library_path, _WAVEGEN_STATE)
        self.resets_state = self._state_addresses is not None
        if not self.resets_state:
            logger.warning(
                "cannot find espeak-ng's wave-generator state in %s: speech will depend "
                "on earlier synthesis calls in this process",
                library_path,
            )
        logger.debug("espeak-ng %s loaded from %s", self.version, library_path)

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, events: int) -> int:
        if count > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # continue synthesis

    def speak(self, text: str, style: VoiceStyle) -> np.ndarray:
        """int16 samples (T,) of ``text`` in ``style``."""
        encoded = text.encode("utf-8") + b"\0"
        with self.lock:
            self._chunks = []
            status = self.library.espeak_SetVoiceByName(style.voice.encode())
            if status != _EE_OK:
                raise ValueError(f"espeak-ng has no voice {style.voice!r} (style {style.name!r})")
            for name, parameter in _PARAMETERS.items():
                status = self.library.espeak_SetParameter(parameter, int(getattr(style, name)), 0)
                if status != _EE_OK:
                    raise RuntimeError(f"espeak-ng rejected {name}={getattr(style, name)}")
            self.library.espeak_ng_SetRandSeed(zlib.crc32(encoded))
            if self._state_addresses is not None:
                for address, value in self._state_addresses:
                    ctypes.c_int.from_address(address).value = value
            status = self.library.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != _EE_OK or self.library.espeak_Synchronize() != _EE_OK:
                raise RuntimeError(f"espeak-ng failed to synthesise {text!r} (status {status})")
            audio = b"".join(self._chunks)
            self._chunks = []
        return np.frombuffer(audio, dtype="<i2").astype(np.int16)


_ENGINE: _EspeakEngine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _EspeakEngine:
    """The process's espeak-ng engine, loaded on first use (espeak-ng state is global)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _EspeakEngine()
        return _ENGINE


def _static_addresses(
    library: ctypes.CDLL, library_path: str, variables: Mapping[str, int]
) -> list[tuple[int, int]] | None:
    """Runtime addresses of the named 4-byte static variables, with their reset values.

    Reads the ELF symbol table of the library file; the load address is the runtime
    address of an exported function minus its address in the file. None when the
    file is not a 64-bit little-endian ELF with a symbol table, or a name is missing
    or ambiguous.
    """
    if sys.platform != "linux":
        return None
    try:
        symbols = _elf_symbols(Path(library_path), prefixes=(*variables, "espeak_Synth"))
    except (OSError, struct.error, ValueError) as error:
        logger.debug("cannot read symbols of %s: %s", library_path, error)
        return None
    anchor = symbols.get("espeak_Synth")
    if anchor is None:
        return None
    base = ctypes.cast(library.espeak_Synth, ctypes.c_void_p).value - anchor[0]
    addresses = []
    for name, value in variables.items():
        matches = [
            (address, size)
            for symbol, (address, size) in symbols.items()
            if symbol == name or (symbol.startswith(name + ".") and symbol[len(name) + 1 :].isdigit())
        ]
        if len(matches) != 1 or matches[0][1] != ctypes.sizeof(ctypes.c_int):
            return None
        addresses.append((base + matches[0][0], value))
    return addresses


def _elf_symbols(path: Path, prefixes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """name → (address, size) of ``.symtab`` symbols starting with one of ``prefixes``."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    section_offset = struct.unpack_from("<Q", data, 0x28)[0]
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    wanted = tuple(prefix.encode() for prefix in prefixes)
    symbols: dict[str, tuple[int, int]] = {}
    for section in sections:
        if section[1] != 2:  # SHT_SYMTAB
            continue
        strings = sections[section[6]][4]
        for offset in range(section[4], section[4] + section[5], 24):
            name_offset, _info, _other, _index, value, size = struct.unpack_from("<IBBHQQ", data, offset)
            start = strings + name_offset
            if not data.startswith(wanted, start):
                continue
            name = data[start : data.index(b"\0", start)].decode()
            symbols[name] = (value, size)
    return symbols


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


__all__ = [
    "SAMPLE_RATE",
    "SPEECH_COLUMNS",
    "PLAIN_MANNER",
    "VOICE_STYLES",
    "SpeechDatasetSummary",
    "SpeechSynthesizer",
    "VoiceStyle",
    "build_speech_dataset",
    "load_speech_dataset",
    "speech_builder_version",
]
