"""Checks of a trained tokenizer and prior before judging generated images.

The design notes' lessons, made into functions: measure the tokenizer's
reconstruction fidelity in the encoder's own space (embedding cosine and caption
retrieval of reconstructions against originals) before training a prior, and look at
where the prior's teacher-forced loss sits on the grid (background codes are easy;
the object's codes matter) and whether its teacher-forced predictions decode to the
training image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from embedspace.generator.prior import Prior
from embedspace.generator.tokenizer import CodebookUsage, VQTokenizer, codebook_usage
from embedspace.recipes.generator_training import images_to_tensor
from embedspace.recipes.metrics import recall_at_k

EmbedImages = Callable[[np.ndarray], np.ndarray]
"""``embed(images uint8 (N, H, W, 3)) -> (N, D) float32`` unit vectors (the image tower)."""


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def encode_images(tokenizer: VQTokenizer, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> codes (N, h, w) int64."""
    out = [tokenizer.encode(images_to_tensor(images[s]).to(tokenizer.device)).cpu()
           for s in _batches(len(images), batch_size)]
    return torch.cat(out).numpy()


@torch.no_grad()
def decode_codes(tokenizer: VQTokenizer, codes: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """codes (N, h, w) int64 -> uint8 images (N, H, W, 3)."""
    out = []
    for s in _batches(len(codes), batch_size):
        x = tokenizer.decode(torch.as_tensor(codes[s]).long().to(tokenizer.device))  # (b, 3, H, W)
        out.append(((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy()


def reconstruct_images(tokenizer: VQTokenizer, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> their uint8 reconstructions through the codes."""
    return decode_codes(tokenizer, encode_images(tokenizer, images, batch_size), batch_size)


@dataclass(frozen=True)
class TokenizerFidelity:
    """How much of what an image *is* survives tokenization.

    Attributes:
        pixel_l1: mean absolute error in [0, 1] pixel units.
        embedding_cosine: mean cosine between embeddings of originals and reconstructions.
        recall_originals, recall_reconstructions: caption recall@k of the originals and of
            the reconstructions (None without caption vectors).
        usage: codebook usage of the images' codes.
    """

    pixel_l1: float
    embedding_cosine: float
    recall_originals: float | None
    recall_reconstructions: float | None
    usage: CodebookUsage


def tokenizer_fidelity(
    tokenizer: VQTokenizer,
    images: np.ndarray,
    embed: EmbedImages,
    caption_vectors: np.ndarray | None = None,
    k: int = 5,
    batch_size: int = 256,
) -> TokenizerFidelity:
    """Reconstruction fidelity of ``images`` (N, H, W, 3) uint8 measured with ``embed``.

    ``caption_vectors``: optional (N, D) float32 unit rows, row i the caption of image i; the
    recalls are :func:`embedspace.recipes.metrics.recall_at_k` among all N captions.
    Use a held-out set, or an ``embed`` from a tower trained with another seed, when the
    tokenizer was trained with a perceptual term from the same tower.
    """
    codes = encode_images(tokenizer, images, batch_size)
    recon = decode_codes(tokenizer, codes, batch_size)
    original_vectors, recon_vectors = embed(images), embed(recon)
    cosine = float((original_vectors * recon_vectors).sum(axis=1).mean())
    l1 = float(np.abs(images.astype(np.float32) - recon.astype(np.float32)).mean() / 255.0)
    recall_o = recall_r = None
    if caption_vectors is not None:  # row i's own caption is row i (duplicate captions count as distinct)
        own = np.arange(len(caption_vectors))
        recall_o = recall_at_k(original_vectors @ caption_vectors.T, own, k)
        recall_r = recall_at_k(recon_vectors @ caption_vectors.T, own, k)
    return TokenizerFidelity(l1, cosine, recall_o, recall_r, codebook_usage(torch.as_tensor(codes),
                                                                              tokenizer.config.codebook_size))


@dataclass(frozen=True)
class PriorDiagnostics:
    """Teacher-forced behaviour of a prior on code grids with their conditions.

    Attributes:
        loss: mean cross-entropy per token (nats).
        accuracy: fraction of tokens whose argmax prediction is right.
        loss_per_position: (h, w) mean cross-entropy at each grid cell.
        predicted_codes: (N, h, w) int64 teacher-forced argmax predictions; decode them
            to see whether the prior "knows" the image.
    """

    loss: float
    accuracy: float
    loss_per_position: np.ndarray
    predicted_codes: np.ndarray


@torch.no_grad()
def prior_diagnostics(prior: Prior, codes: np.ndarray, conditions: np.ndarray | None,
                      batch_size: int = 256) -> PriorDiagnostics:
    """Teacher-forced loss, accuracy and per-cell loss of ``prior`` on ``codes`` (N, h, w).

    ``conditions`` (N, D) float32 unit rows, or None for the null condition.
    """
    N, h, w = codes.shape
    losses, predictions = [], []
    for s in _batches(N, batch_size):
        targets = torch.as_tensor(codes[s]).long().view(-1, h * w).to(prior.device)  # (b, L)
        condition = torch.as_tensor(conditions[s]).float().to(prior.device) if conditions is not None else None
        logits, _ = prior(targets[:, :-1], condition)  # (b, L, V)
        losses.append(F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none").cpu())
        predictions.append(logits.argmax(dim=-1).cpu())
    loss = torch.cat(losses)  # (N, L)
    predicted = torch.cat(predictions)  # (N, L)
    accuracy = (predicted == torch.as_tensor(codes).view(N, -1)).float().mean()
    return PriorDiagnostics(float(loss.mean()), float(accuracy), loss.mean(dim=0).view(h, w).numpy(),
                            predicted.view(N, h, w).numpy())
