"""What to generate and how: a :class:`GenerationRequest` and its :class:`SamplingOptions`.

Both are frozen and checked once, when they are made, so every caller (the Space, the
CLI, the dashboard, the report, notebooks) hands :meth:`embedspace.Generator.generate`
values that are already known to be valid, and a bad value fails where it was given,
with a ``ValueError`` naming the field and its allowed range.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedspace.generator.moves import interpolate
from embedspace.vectors import unit_rows

#: Seeds are in [0, MAX_SEED] (numpy's range; image k of a request may use seed + k).
MAX_SEED = 2**32 - 1
#: What to do about condition vectors of the wrong shape.
HINT = "encode queries with the generator's encoder model"


def _real(value: Any, name: str, allowed: str, check) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not check(float(value)):
        raise ValueError(f"{name}={value!r}: use {allowed}")
    return float(value)


def _whole(value: Any, name: str, allowed: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or (high is not None and value > high):
        raise ValueError(f"{name}={value!r}: use {allowed}")
    return int(value)


@dataclass(frozen=True)
class SamplingOptions:
    """How the prior samples codes (see :func:`embedspace.generator.sampling.sample`).

    Attributes:
        guidance: classifier-free guidance scale, finite and >= 0 (default 3): 1 turns
            guidance off, 0 samples unconditionally, 2-5 pushes towards the condition.
        temperature: softmax temperature, finite and >= 0 (default 1); 0 is greedy.
        top_k: keep only the k most likely codes, an integer >= 1, or None (off, default).
        top_p: keep the smallest set of codes with probability mass >= p, in (0, 1], or
            None (off, default).
        plausibility: with guidance, keep only codes whose conditional probability is at
            least this fraction of the likeliest code's, in [0, 1) (default 0.1; 0 = off).
        seed: image k of a request uses ``torch.Generator().manual_seed(seed + k)``
            (condition-major), an integer in [0, 2**32 - 1] (default 0).

    Raises:
        ValueError: a value is outside its range; the message names the field and the range.
    """

    guidance: float = 3.0
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    plausibility: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        checked = {
            "guidance": _real(self.guidance, "guidance", "a finite number >= 0 (1 = no guidance, 3 is typical)", lambda x: x >= 0),
            "temperature": _real(self.temperature, "temperature", "a finite number >= 0 (0 = greedy, 1 = plain sampling)", lambda x: x >= 0),
            "top_k": None if self.top_k is None else _whole(self.top_k, "top_k", "None (off) or an integer >= 1", 1),
            "top_p": None if self.top_p is None else _real(self.top_p, "top_p", "None (off) or a number in (0, 1]", lambda x: 0 < x <= 1),
            "plausibility": _real(self.plausibility, "plausibility", "a number in [0, 1) (0 = off, 0.1 is typical)", lambda x: 0 <= x < 1),
            "seed": _whole(self.seed, "seed", f"an integer from 0 to {MAX_SEED}", 0, MAX_SEED),
        }
        for name, value in checked.items():  # plain Python numbers (numpy scalars become float/int)
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, options: SamplingOptions | None = None, **values: Any) -> SamplingOptions:
        """``options`` (default: the defaults) with the named fields replaced, checked once.

        Raises:
            TypeError: ``options`` is not a SamplingOptions, or a name is not a field.
            ValueError: a value is out of range.
        """
        if options is None:
            options = cls()
        elif not isinstance(options, cls):
            raise TypeError(f"options must be a SamplingOptions, got a {type(options).__name__}")
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TypeError(f"unknown sampling option {unknown[0]!r}; sampling options are {', '.join(sorted(names))}")
        return dataclasses.replace(options, **values) if values else options


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    """Which images to make: ``n`` per condition vector, with what each is said to come from.

    Images are condition-major: image ``i * n + j`` is sample ``j`` of condition ``i``.

    Attributes:
        conditions: ``(N, D)`` float32 unit rows (a ``(D,)`` vector is one row; rows are
            renormalised; read-only). Points of the space of the generator's encoder model.
        n: images per condition, >= 1 (default 4).
        descriptions: what each condition is ("kitten", "item 12", "a → b (3/8)"), one per
            row, or one string for all (default "vector"); stamped on the images
            (:mod:`embedspace.provenance`) and recorded when they are added to a space.
        seeds: the seed of each image (``N * n``, condition-major), instead of the
            options' ``seed + k``; or None (default).
        shared_seed: every image uses the options' ``seed`` (along a path only the
            condition changes); not together with ``seeds``.
        parts: ``(N, K, D)`` float32 unit rows, or None (default): K points per condition,
            each given to the prior as prefix tokens of its own, so each image answers to
            all of them (composition, for a generator whose prior takes K points; made by
            :meth:`composed`; ``conditions`` is then their normalised sum, the point
            recorded with the images).

    Raises:
        ValueError: no condition, bad vectors (see :func:`embedspace.vectors.unit_rows`),
            ``n`` < 1, descriptions or seeds of the wrong length or range.
    """

    conditions: np.ndarray
    n: int = 4
    descriptions: tuple[str, ...] | str = "vector"
    seeds: tuple[int, ...] | None = None
    shared_seed: bool = False
    parts: np.ndarray | None = None

    def __post_init__(self) -> None:
        one = np.ndim(self.conditions) == 1  # a (D,) vector is one condition
        conditions = unit_rows(self.conditions, (np.shape(self.conditions)[0] or None) if one else None, "condition vectors", HINT)
        if len(conditions) == 0:
            raise ValueError("condition vectors: none given; give at least one (D,) vector")
        conditions.setflags(write=False)
        n = _whole(self.n, "n", "an integer >= 1 (images per condition)", 1)
        descriptions = (self.descriptions,) * len(conditions) if isinstance(self.descriptions, str) else tuple(self.descriptions)
        if len(descriptions) != len(conditions) or not all(isinstance(text, str) for text in descriptions):
            raise ValueError(f"descriptions: give one string per condition ({len(conditions)}), or one string for all")
        seeds = self.seeds
        if seeds is not None:
            if self.shared_seed:
                raise ValueError("seeds and shared_seed=True both given; give one of them")
            if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
                raise ValueError(f"seeds: give a sequence of {len(conditions) * n} integers, got a {type(seeds).__name__}")
            seeds = tuple(_whole(seed, "seeds", f"integers from 0 to {MAX_SEED}", 0, MAX_SEED) for seed in np.asarray(seeds).reshape(-1).tolist())
            if len(seeds) != len(conditions) * n:
                raise ValueError(f"seeds has {len(seeds)} entries but {len(conditions) * n} images are asked for")
        parts = self.parts
        if parts is not None:
            parts = np.asarray(parts)
            if parts.ndim != 3 or parts.shape[0] != len(conditions) or parts.shape[1] == 0 or parts.shape[2] != conditions.shape[1]:
                raise ValueError(f"parts: give (N={len(conditions)}, K >= 1, D={conditions.shape[1]}) vectors, got shape {parts.shape}")
            parts = unit_rows(parts.reshape(-1, parts.shape[2]), conditions.shape[1], "parts", HINT).reshape(parts.shape)
            parts.setflags(write=False)
        for name, value in (("conditions", conditions), ("n", n), ("descriptions", descriptions), ("seeds", seeds), ("parts", parts)):
            object.__setattr__(self, name, value)

    @classmethod
    def composed(cls, parts: np.ndarray, n: int = 4, descriptions: Sequence[str] | None = None) -> GenerationRequest:
        """``n`` images that answer to all K points of ``parts`` (``(K, D)``, or ``(N, K, D)`` for N
        compositions), e.g. "red shape", "circle" and "shape at the top left".

        The prior sees each point as prefix tokens of its own (it must take K points: its
        ``condition_parts``, see :mod:`embedspace.generator.prior`), so a combination never
        seen in training can be asked for one attribute at a time. ``descriptions``: one
        per part (K), joined with " + " (default "vector + vector ...").
        """
        parts = np.asarray(parts, dtype=np.float32)
        parts = parts[None] if parts.ndim == 2 else parts
        if parts.ndim != 3 or 0 in parts.shape:
            raise ValueError(f"parts: give (K, D) or (N, K, D) vectors, got shape {parts.shape}")
        unit = unit_rows(parts.reshape(-1, parts.shape[2]), parts.shape[2], "parts", HINT).reshape(parts.shape)
        words = ["vector"] * parts.shape[1] if descriptions is None else [str(text) for text in descriptions]
        if len(words) != parts.shape[1]:
            raise ValueError(f"descriptions: give one per part ({parts.shape[1]}), got {len(words)}")
        return cls(unit.sum(axis=1), n=n, descriptions=" + ".join(words), parts=unit)

    @classmethod
    def between(cls, start: np.ndarray, end: np.ndarray, steps: int, start_description: str = "start",
                end_description: str = "end", method: str = "slerp") -> GenerationRequest:
        """One image at each of ``steps`` points of the path from ``start`` to ``end`` (both included).

        Every point uses the same seed (``shared_seed``), so along the strip only the
        condition changes. Point ``i`` is described as ``"start → end (i+1/steps)"``.
        See :func:`embedspace.generator.moves.interpolate` for ``method``.
        """
        path = interpolate(start, end, steps, method)  # (steps, D)
        title = f"{start_description} → {end_description}"
        return cls(path, n=1, descriptions=tuple(f"{title} ({step + 1}/{len(path)})" for step in range(len(path))), shared_seed=True)

    @property
    def image_count(self) -> int:
        """``N * n``, the images this request makes."""
        return len(self.conditions) * self.n

    def image_seeds(self, seed: int) -> np.ndarray:
        """``(N * n,)`` int64: each image's seed, given the options' ``seed``."""
        if self.seeds is not None:
            return np.asarray(self.seeds, dtype=np.int64)
        if self.shared_seed:
            return np.full(self.image_count, seed, dtype=np.int64)
        return np.arange(self.image_count, dtype=np.int64) + int(seed)

    def image_descriptions(self) -> tuple[str, ...]:
        """The description of each image (condition-major)."""
        return tuple(description for description in self.descriptions for _ in range(self.n))
