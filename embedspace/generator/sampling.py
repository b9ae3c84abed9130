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

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from embedspace.generator.options import HINT, SamplingOptions
from embedspace.generator.prior import Prior
from embedspace.vectors import unit_rows

OnToken = Callable[[int, torch.Tensor], None]
"""``on_token(step, tokens_so_far)``: ``step`` from 0, ``tokens_so_far`` (B, step + 1) int64."""


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
    options: SamplingOptions | None = None,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    on_token: OnToken | None = None,
    use_cache: bool = True,
    forced: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    **values: float | int | None,
) -> torch.Tensor:
    """Sample one code grid per condition (or, with ``forced`` and ``keep``, complete a partly kept grid).

    Args:
        prior: the transformer prior (its device is used).
        conditions: (B, D) or (D,) float32 unit vectors, or (B, K, D): K points per image
            for a prior that composes (``condition_parts`` >= K; see
            :mod:`embedspace.generator.prior`).
        options: guidance, plausibility, temperature, top_k, top_p (see
            :class:`~embedspace.generator.options.SamplingOptions`; its ``seed`` is used
            only when ``generator`` is None). Keyword ``values`` (``guidance=2.0``) replace
            fields of ``options`` (default: the defaults).
        generator: one ``torch.Generator`` or one per row (row-independent draws);
            None means ``torch.Generator().manual_seed(options.seed)``.
        on_token: called after every token as ``on_token(step, tokens_so_far (B, step+1))``.
        use_cache: False recomputes the whole sequence at every step (slow; a reference
            for tests and benchmarks). Both paths give the same tokens.
        forced: ``(B, L)`` int64 codes in raster order, with ``keep`` ``(B, L)`` or ``(L,)``
            bool: at every kept position the forced code is placed instead of a sampled one,
            so later tokens are sampled seeing it (editing). Noise is drawn for every
            position either way, so the free tokens' draws do not depend on the mask.

    Returns:
        codes (B, grid_size, grid_size) int64 on the prior's device.
    """
    options = SamplingOptions.of(options, **values)
    config, device = prior.config, prior.device
    shape = tuple(np.shape(conditions))
    K = shape[1] if len(shape) == 3 else 1
    if len(shape) == 3 and not 1 <= K <= config.condition_parts:
        raise ValueError(f"condition vectors: {K} points per image given; this generator takes "
                         f"{'1' if config.condition_parts == 1 else f'1 to {config.condition_parts}'} (it was trained on that many)")
    flat = torch.as_tensor(np.asarray(conditions) if isinstance(conditions, (list, tuple)) else conditions).reshape(-1, shape[-1]) \
        if len(shape) == 3 else conditions
    cond = torch.from_numpy(unit_rows(flat, config.condition_dim, "condition vectors", HINT)).to(device)  # (B*K, D)
    if cond.shape[0] == 0:
        raise ValueError("condition vectors: none given; give at least one (D,) vector")
    B, L = cond.shape[0] // K, config.sequence_length
    cond = cond.view(B, K, -1) if K > 1 else cond  # (B, D) or (B, K, D)
    if (forced is None) != (keep is None):
        raise ValueError("forced codes and the keep mask go together: give both or neither")
    if forced is not None:
        forced = torch.as_tensor(forced, device=device).long().reshape(B, L)
        keep = torch.as_tensor(keep, device=device).bool().reshape(-1, L).expand(B, L)
    generator = torch.Generator().manual_seed(options.seed) if generator is None else generator
    noise = _uniform_noise(B, L, generator).to(device)  # (B, L), one uniform per token
    guided = options.guidance != 1.0
    copies = 2 if guided else 1  # guided: rows [0, B) conditional, [B, 2B) null
    cond = torch.cat([cond] * copies)  # (copies*B, [K,] D)
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
            logits = guide(*logits.chunk(2), options.guidance, options.plausibility)  # (B, V)
        next_token = pick_tokens(logits, noise[:, step], options.temperature, options.top_k, options.top_p)  # (B,)
        if forced is not None:
            next_token = torch.where(keep[:, step], forced[:, step], next_token)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        if on_token is not None:
            on_token(step, tokens)
    return tokens.view(B, config.grid_size, config.grid_size)
