"""Slow end-to-end check: the generator learns the coloured-shapes dataset.

Trains a small tokenizer and prior on rendered shapes with a synthetic, perfectly
compositional condition space (one random direction per colour, shape and position,
summed), generates from the conditions and reads the images back with the pixel
analyser. Measured on a shared 2-core CPU (17 minutes): reconstructions read back
99% right, the codebook fully used; generating from the training conditions reads back
92% right unguided, 20% with plain guidance 3 and 100% with guidance 3 and the
plausibility constraint; the 12 held-out combinations only 15%.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from embedspace.generator import Generator, PriorConfig, TokenizerConfig
from embedspace.recipes import shapes
from embedspace.recipes.generator_evaluation import encode_images, prior_diagnostics, reconstruct_images
from embedspace.recipes.generator_training import train_prior, train_tokenizer

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)


def attribute_space(labels: list[shapes.ShapeReading], dim: int = 64, seed: int = 0) -> np.ndarray:
    """(N, dim) float32 unit conditions: normalised sum of one random direction per attribute."""
    rng = np.random.default_rng(seed)
    names = list(shapes.COLOURS) + list(shapes.SHAPES) + list(shapes.POSITIONS)
    basis = dict(zip(names, rng.standard_normal((len(names), dim))))
    vectors = np.stack([basis[l.colour] + basis[l.shape] + basis[l.position] for l in labels])
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_generator_learns_coloured_shapes(request):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("takes about 17 minutes on the CPU; select it with -m slow")
    train = shapes.make_dataset(image_size=32, variants=4, seed=0)
    held_out = {i for i in range(len(train.labels)) if i % 216 % 18 == 5}  # 12 combinations never seen
    keep = np.array([i for i in range(len(train.labels)) if i not in held_out])

    tokenizer = train_tokenizer(
        train.images[keep], TokenizerConfig(image_size=32, widths=(32, 64, 64), codebook_size=256, code_dim=16),
        epochs=60, batch_size=32, lr=2e-3, device=device, progress=False,
    )
    clean = shapes.make_dataset(image_size=32)
    reconstruction = shapes.accuracy(list(reconstruct_images(tokenizer, clean.images)), clean.labels)
    usage = tokenizer.codebook_usage(torch.as_tensor(encode_images(tokenizer, train.images)))
    logger.warning("reconstructions read back: %s; codebook %s", reconstruction, usage)

    codes = encode_images(tokenizer, train.images[keep])
    conditions = attribute_space([train.labels[i] for i in keep])
    prior = train_prior(
        codes, conditions, None, PriorConfig(vocab_size=256, grid_size=8, condition_dim=64, n_layer=4, n_head=4,
                                             n_embd=128),
        epochs=80, batch_size=32, lr=1e-3, device=device, progress=False,
    )
    diagnostics = prior_diagnostics(prior, codes, conditions)
    generator = Generator(tokenizer, prior, "attribute-space")
    seen = [l for i, l in enumerate(clean.labels) if i not in {j % 216 for j in held_out}]
    unseen = [clean.labels[j % 216] for j in sorted(held_out) if j < 216]
    scores = {}
    for guidance, plausibility in ((1.0, 0.0), (3.0, 0.0), (3.0, 0.1)):
        result = generator.generate(attribute_space(seen), n=1, seed=0, guidance=guidance, plausibility=plausibility,
                                    batch_size=256)
        scores[f"seen, guidance {guidance}, plausibility {plausibility}"] = shapes.accuracy(result.images, seen)
    result = generator.generate(attribute_space(unseen), n=4, seed=0, guidance=3.0)
    expected = [label for label in unseen for _ in range(4)]
    scores["unseen, guidance 3.0, plausibility 0.1"] = shapes.accuracy(result.images, expected)
    logger.warning("prior teacher-forced loss %.3f accuracy %.3f; generated images read back: %s",
                   diagnostics.loss, diagnostics.accuracy, scores)

    assert reconstruction["all"] >= 0.9
    assert usage.used_codes >= 32
    assert scores["seen, guidance 1.0, plausibility 0.0"]["all"] >= 0.8
    assert scores["seen, guidance 3.0, plausibility 0.1"]["all"] >= 0.9
