"""Sampling image codes from a :class:`~embedspace.generator.prior.Prior`.

Autoregressive decoding with a key/value cache, temperature, top-k and nucleus (top-p,
Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration") filtering, and
classifier-free guidance (Ho & Salimans, 2022): the conditional and the null-condition
passes run as one batch of 2B and are mixed as ``null + scale * (cond - null)``. Guided
logits are restricted to tokens the conditional model finds plausible, the adaptive
plausibility constraint of contrastive decoding (Li et al., 2023, "Contrastive
Decoding"): without it, tokens that the null model rules out get boosted whatever
the conditional model thinks, and a small, confident prior falls apart under guidance.

Randomness comes only from the given ``torch.Generator`` (or one per row): every token
uses one uniform number drawn up front and inverse-CDF sampling, so the cached and the
full-recompute paths draw exactly the same tokens, and a row's tokens do not depend
on the other rows in its batch when each row has its own generator.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from embedspace.generator.prior import Prior

logger = logging.getLogger(__name__)

OnToken = Callable[[int, torch.Tensor], None]
"""``on_token(step, tokens_so_far)``: ``step`` from 0, ``tokens_so_far`` (B, step + 1) int64."""


def validate_conditions(conditions: np.ndarray | torch.Tensor, dim: int) -> torch.Tensor:
    """Check condition vectors and return them as float32 (B, D) unit rows (CPU tensor).

    Accepts (D,) or (B, D) arrays. Raises ValueError, naming the expected dimension,
    for a wrong shape, NaN/inf values, or an all-zero row. Rows are renormalised.
    """
    array = np.asarray(conditions.detach().cpu() if torch.is_tensor(conditions) else conditions)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"condition vectors must be float32 vectors of dimension {dim}, got dtype {array.dtype}.")
    x = torch.as_tensor(array)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
        raise ValueError(
            f"expected condition vectors of dimension {dim} (shape ({dim},) or (N, {dim})), "
            f"got shape {tuple(np.shape(conditions))}; encode queries with the generator's encoder model."
        )
    x = x.float()
    bad = (~torch.isfinite(x)).any(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()[:10]
        raise ValueError(
            f"condition vectors contain NaN or inf (rows {rows}); expected finite L2-normalised "
            f"vectors of dimension {dim}."
        )
    norms = x.norm(dim=1, keepdim=True)
    if (norms < 1e-12).any():
        raise ValueError(f"a condition vector is all zeros; expected L2-normalised vectors of dimension {dim}.")
    if ((norms - 1).abs() > 1e-3).any():
        logger.debug("renormalising condition vectors that were not unit length")
    return x / norms


def _check_options(guidance: float, plausibility: float, temperature: float, top_k: int | None,
                   top_p: float | None) -> None:
    if not (math.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"guidance={guidance}; use a finite scale >= 0 (1 = no guidance, 3 is typical).")
    if not 0 <= plausibility < 1:
        raise ValueError(f"plausibility={plausibility}; use a value in [0, 1) (0 = off, 0.1 is typical).")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature={temperature}; use a value >= 0 (0 = greedy, 1 = plain sampling).")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k}; use None (off) or an integer >= 1.")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p}; use None (off) or a value in (0, 1].")


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set logits (B, V) outside the top-k and outside the top-p nucleus to -inf."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # mass of the strictly more likely tokens
        remove = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, mass_before >= top_p)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def guide(conditional: torch.Tensor, null: torch.Tensor, scale: float, plausibility: float) -> torch.Tensor:
    """Classifier-free guidance of logits (B, V): ``null + scale * (conditional - null)``,
    with tokens whose conditional probability is below ``plausibility`` times the most
    likely token's set to -inf."""
    guided = null + scale * (conditional - null)
    if plausibility > 0:
        threshold = conditional.max(dim=-1, keepdim=True).values + math.log(plausibility)
        guided = guided.masked_fill(conditional < threshold, float("-inf"))
    return guided


def pick_tokens(logits: torch.Tensor, uniform: torch.Tensor, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Draw one token per row of logits (B, V) by inverse CDF with uniform (B,) in [0, 1)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)  # (B, V)
    cdf = probs.cumsum(dim=-1)
    index = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
    last_allowed = probs.size(-1) - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)  # rounding guard
    return torch.minimum(index, last_allowed)


def _uniform_noise(batch: int, length: int, generator: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
    """(batch, length) uniforms on the CPU: from one generator, or one row per generator."""
    if isinstance(generator, torch.Generator):
        return torch.rand((batch, length), generator=generator, device=generator.device).cpu()
    if len(generator) != batch:
        raise ValueError(f"got {len(generator)} generators for {batch} conditions; pass one per row or one in all.")
    return torch.stack([torch.rand(length, generator=g, device=g.device).cpu() for g in generator])


@torch.no_grad()
def sample(
    prior: Prior,
    conditions: np.ndarray | torch.Tensor,
    *,
    guidance: float = 3.0,
    plausibility: float = 0.1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    on_token: OnToken | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Sample one code grid per condition.

    Args:
        prior: the transformer prior (its device is used).
        conditions: (B, D) or (D,) float32 unit vectors.
        guidance: classifier-free guidance scale; 1 turns guidance off (one pass),
            0 samples unconditionally, > 1 pushes towards the condition.
        plausibility: with guidance, keep only tokens whose conditional probability is
            at least this fraction of the most likely token's (0 = keep all).
        temperature: softmax temperature; 0 is greedy.
        top_k, top_p: keep only the k most likely tokens / the smallest set with mass >= p.
        generator: one ``torch.Generator`` or one per row (row-independent draws);
            None means ``torch.Generator().manual_seed(0)``.
        on_token: called after every token as ``on_token(step, tokens_so_far (B, step+1))``.
        use_cache: False recomputes the whole sequence at every step (slow; a reference
            for tests and benchmarks). Both paths give the same tokens.

    Returns:
        codes (B, grid_size, grid_size) int64 on the prior's device.
    """
    _check_options(guidance, plausibility, temperature, top_k, top_p)
    config, device = prior.config, prior.device
    cond = validate_conditions(conditions, config.condition_dim).to(device)  # (B, D)
    B, L = cond.shape[0], config.sequence_length
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    noise = _uniform_noise(B, L, generator).to(device)  # (B, L), one uniform per token
    guided = guidance != 1.0
    copies = 2 if guided else 1  # guided: rows [0, B) conditional, [B, 2B) null
    cond = cond.repeat(copies, 1)  # (copies*B, D)
    drop = (torch.arange(copies * B, device=device) >= B) if guided else None  # (copies*B,)
    cache = prior.new_cache(copies * B) if use_cache else None
    tokens = torch.zeros(B, 0, dtype=torch.long, device=device)  # (B, t)
    for step in range(L):
        if not use_cache:
            logits = prior(tokens.repeat(copies, 1), cond, drop_condition=drop)[0][:, -1]
        elif step == 0:
            logits = prior.prefill(cond, cache, drop)
        else:
            logits = prior.forward_step(tokens[:, -1].repeat(copies), cache)
        logits = logits.float()  # (copies*B, V)
        if guided:
            logits = guide(*logits.chunk(2), guidance, plausibility)  # (B, V)
        next_token = pick_tokens(logits, noise[:, step], temperature, top_k, top_p)  # (B,)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        if on_token is not None:
            on_token(step, tokens)
    return tokens.view(B, config.grid_size, config.grid_size)
