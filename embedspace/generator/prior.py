"""Transformer prior over image codes, conditioned on a point of the embedding space.

A decoder-only transformer in the style of nanoGPT (GPT-2, Radford et al., 2019) over
the raster-ordered code grid of the VQ tokenizer, as in the second stage of VQGAN
(Esser et al., 2021). The condition vector (B, D) is projected to ``n_prefix`` prefix
tokens placed before the image tokens. A learned *null* prefix stands for "no
condition"; training replaces the condition by it at random so that sampling can use
classifier-free guidance (Ho & Salimans, 2022). A preallocated key/value cache makes
incremental decoding cost one token per step.

Sequence layout (length ``n_prefix + T``)::

    [prefix_0 .. prefix_{P-1}] [code_0 .. code_{T-1}]

The output at position ``P - 1 + t`` is the distribution of ``code_t``.

A prior with ``condition_parts`` K > 1 takes up to K points per image, (B, K, D), each
projected to its own ``n_prefix`` tokens (P = K * n_prefix); a missing point (a zero row,
or fewer than K given) gets the null prefix. Trained on sets of points that each name
one part of the image ("red shape", "circle", "shape at the top left"), with parts left
out at random and the slots shuffled, it composes: a combination it never saw can be
asked for one part at a time, since each part reaches the transformer as tokens of its
own (conditioning on a set of tokens, as text-to-image transformers condition on words).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from embedspace.generator.serialization import load_component, save_component
from embedspace.typed_config import from_json_dict


@dataclass(frozen=True)
class PriorConfig:
    """Architecture of a :class:`Prior` (saved as ``config.json``).

    Attributes:
        vocab_size: number of image codes (the tokenizer's ``codebook_size``).
        grid_size: side of the code grid; the image is ``grid_size ** 2`` tokens.
        condition_dim: D, dimension of the embedding space (e.g. 384).
        n_prefix: number of prefix tokens each condition point is projected to (1–8).
        condition_parts: K, the most points a condition may hold (1: one point, (B, D)).
        n_layer, n_head, n_embd: transformer depth, heads and width.
        dropout: dropout in attention, MLP and embeddings (0 for small data is fine).
        bias: biases in Linear layers and LayerNorms (nanoGPT default False).
    """

    vocab_size: int = 512
    grid_size: int = 8
    condition_dim: int = 384
    n_prefix: int = 4
    n_layer: int = 6
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = False
    condition_parts: int = 1

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}.")
        if self.n_prefix < 1:
            raise ValueError(f"n_prefix={self.n_prefix} must be at least 1.")
        if self.condition_parts < 1:
            raise ValueError(f"condition_parts={self.condition_parts} must be at least 1.")

    @property
    def prefix_length(self) -> int:
        """Prefix tokens before the image: ``condition_parts * n_prefix``."""
        return self.condition_parts * self.n_prefix

    @property
    def sequence_length(self) -> int:
        """Number of image tokens, ``grid_size ** 2``."""
        return self.grid_size * self.grid_size

    @property
    def block_size(self) -> int:
        """Longest input the transformer sees: prefix plus all but the last image token."""
        return self.prefix_length + self.sequence_length - 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PriorConfig":
        """A config from its JSON form.

        Raises:
            ValueError: an unknown key, a missing one or a value of the wrong type (naming it).
        """
        return from_json_dict(cls, data, "prior config")


class KVCache:
    """Preallocated keys and values of every layer for incremental decoding.

    ``keys`` and ``values`` are ``(n_layer, B, n_head, block_size, head_dim)``;
    positions ``[0, length)`` are filled.
    """

    def __init__(self, config: PriorConfig, batch_size: int, device: torch.device, dtype: torch.dtype):
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's cannot drop only the bias)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.size()  # batch, new positions, n_embd
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        mask, causal = None, True
        if cache is not None:
            start = cache.length
            cache.keys[layer, :, :, start : start + T] = k
            cache.values[layer, :, :, start : start + T] = v
            k = cache.keys[layer, :, :, : start + T]  # (B, nh, start+T, hs)
            v = cache.values[layer, :, :, : start + T]
            if start > 0:  # new queries see every cached position and the new ones causally
                causal = False
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class Prior(nn.Module):
    """Decoder-only transformer p(codes | condition) with a learned null condition."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        C, P = config.n_embd, config.n_prefix
        # condition (B, D) -> prefix (B, P, C); the input is scaled by sqrt(D) so a unit
        # vector has entries of order 1
        self.condition_proj = nn.Sequential(
            nn.Linear(config.condition_dim, C, bias=config.bias),
            nn.GELU(),
            nn.Linear(C, P * C, bias=config.bias),
        )
        self.null_prefix = nn.Parameter(torch.zeros(P, C))  # the "no condition" prefix
        self.tok_emb = nn.Embedding(config.vocab_size, C)
        self.pos_emb = nn.Embedding(config.block_size, C)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(C, bias=config.bias)
        self.head = nn.Linear(C, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        nn.init.normal_(self.null_prefix, mean=0.0, std=0.02)
        for name, p in self.named_parameters():  # scaled init of residual projections (GPT-2)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def prefix(self, condition: torch.Tensor | None, drop_condition: torch.Tensor | None = None,
               batch_size: int | None = None) -> torch.Tensor:
        """Prefix tokens (B, K * P, C) for conditions (B, D) or (B, k, D) with k <= K
        (``condition_parts``); zero rows and the slots past k get the null prefix, and so do
        rows where ``drop_condition`` (B,) bool is True, or all rows when ``condition`` is None."""
        P, C, K = self.config.n_prefix, self.config.n_embd, self.config.condition_parts
        null = self.null_prefix.unsqueeze(0)  # (1, P, C)
        if condition is None:
            return null.repeat(1, K, 1).expand(batch_size or 1, K * P, C)
        D = self.config.condition_dim
        parts = condition.view(condition.shape[0], -1, D)  # (B, k, D)
        if parts.shape[1] > K:
            raise ValueError(f"the condition holds {parts.shape[1]} points; this prior takes at most {K} per image")
        parts = F.pad(parts, (0, 0, 0, K - parts.shape[1]))  # (B, K, D)
        prefix = self.condition_proj(parts * math.sqrt(D)).view(-1, K, P, C)  # (B, K, P, C)
        absent = (parts == 0).all(dim=2)  # (B, K)
        if drop_condition is not None:
            absent = absent | drop_condition.view(-1, 1)
        prefix = torch.where(absent.view(-1, K, 1, 1), null.unsqueeze(1).to(prefix.dtype), prefix)
        return prefix.reshape(-1, K * P, C)

    def _transform(self, x: torch.Tensor, start: int, cache: KVCache | None) -> torch.Tensor:
        """Embeddings x (B, T, C) at positions [start, start+T) -> final hidden states (B, T, C)."""
        pos = torch.arange(start, start + x.shape[1], device=x.device)  # (T,)
        x = self.drop(x + self.pos_emb(pos))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += x.shape[1]
        return self.ln_f(x)

    def forward(
        self,
        codes: torch.Tensor,
        condition: torch.Tensor | None,
        targets: torch.Tensor | None = None,
        drop_condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of every next code, recomputing the whole sequence.

        Args:
            codes: (B, T) int64 codes so far, raster order, ``0 <= T < sequence_length``.
            condition: (B, D) float32 unit vectors, (B, k, D) with k <= ``condition_parts``
                (zero rows: no point), or None for the null condition.
            targets: optional (B, T + 1) int64 codes to score (usually the full
                sequence: ``prior(codes[:, :-1], condition, targets=codes)``).
            drop_condition: optional (B,) bool; True rows use the null condition.

        Returns:
            logits (B, T + 1, vocab_size) where ``logits[:, t]`` is the distribution of
            code ``t`` given ``codes[:, :t]``, and the mean cross-entropy (or None).
        """
        B, T = codes.shape
        if T >= self.config.sequence_length:
            raise ValueError(
                f"codes has {T} tokens; the prior predicts at most {self.config.sequence_length} "
                "so it takes at most sequence_length - 1 (pass codes[:, :-1])."
            )
        prefix = self.prefix(condition, drop_condition, batch_size=B)  # (B, P, C)
        x = torch.cat([prefix.to(self.tok_emb.weight.dtype), self.tok_emb(codes)], dim=1)  # (B, P+T, C)
        h = self._transform(x, 0, None)[:, self.config.prefix_length - 1 :]  # (B, T+1, C)
        logits = self.head(h)  # (B, T+1, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` sequences on this model's device."""
        return KVCache(self.config, batch_size, self.device, self.head.weight.dtype)

    def prefill(
        self, condition: torch.Tensor | None, cache: KVCache, drop_condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the prefix into an empty ``cache``; return logits (B, V) of code 0."""
        if cache.length != 0:
            raise ValueError("prefill needs an empty KVCache; make one with new_cache().")
        B = cache.keys.shape[1]
        x = self.prefix(condition, drop_condition, batch_size=B).to(self.tok_emb.weight.dtype)  # (B, P, C)
        return self.head(self._transform(x, 0, cache)[:, -1])  # (B, V)

    def forward_step(self, codes: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Append the newest codes (B,) to the cached sequence; return logits (B, V) of the next code."""
        if cache.length >= self.config.block_size:
            raise ValueError("the KVCache is full: every image token has been generated.")
        x = self.tok_emb(codes.view(-1, 1))  # (B, 1, C)
        return self.head(self._transform(x, cache.length, cache)[:, -1])  # (B, V)

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
        """Write ``folder/config.json`` and ``folder/model.safetensors`` (weights in ``dtype`` if given)."""
        save_component(self, self.config.to_dict(), folder, dtype)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "Prior":
        """Load a prior saved by :meth:`save_pretrained`, in eval mode on ``device``.

        Raises:
            FileNotFoundError: the folder lacks ``config.json`` or ``model.safetensors``.
            ValueError: ``config.json`` is not a valid prior config (naming the file and key).
        """
        config, state = load_component(folder, PriorConfig.from_dict)
        model = cls(config)
        model.load_state_dict(state)
        return model.to(device).eval()
