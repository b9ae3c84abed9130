"""The modality gap: how far apart a space's texts, images and sounds sit, measured.

Contrastive towers put matched pairs (an image and its caption) closer than unmatched
ones, yet each modality tends to occupy its own region: texts sit closer to other texts
than to the images they describe. For each pair of modalities the space holds,
:func:`modality_gap` reports

- the mean cosine of **matched** pairs: items of the two modalities sharing a value of
  ``pair_column`` (the demo space's ``key``: an emoji's image, caption and clips), when the
  space has that column;
- the mean cosine of **unmatched** pairs: random items of the two modalities;
- the distance between the two modalities' **centroids** (means of unit vectors; 0 when
  they share a centre, up to 2).

A healthy shared space has matched well above unmatched; a large centroid distance is
the gap. Up to ``sample`` items per modality are read (by id, from the parts), so the
measure costs the same at any size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

MODALITY_ORDER = ("text", "image", "audio")
#: Items read per modality.
GAP_SAMPLE = 20_000


@dataclass(frozen=True)
class ModalityGap:
    """The gap between two modalities (see the module docstring); ``matched`` is None without pairs."""

    first: str
    second: str
    matched: float | None
    unmatched: float
    centroid_distance: float
    pairs: int

    def line(self) -> str:
        matched = f"matched pairs {self.matched:.2f} (n={self.pairs:,}) vs " if self.matched is not None else ""
        return f"{self.first}–{self.second}: mean cosine {matched}unmatched {self.unmatched:.2f}; centroids {self.centroid_distance:.2f} apart"


def modality_gap(
    items: pd.DataFrame,
    vectors_of: Callable[[np.ndarray], np.ndarray],
    pair_column: str | None = "key",
    sample: int = GAP_SAMPLE,
    seed: int = 0,
) -> list[ModalityGap]:
    """The gap between every two modalities present in ``items`` (columns ``id``, ``modality``, optionally ``pair_column``).

    ``vectors_of(ids)`` returns the ``(n, D)`` unit vectors of ``(n,)`` ids.
    """
    rng = np.random.default_rng(seed)
    chosen: dict[str, pd.DataFrame] = {}
    for modality in MODALITY_ORDER:
        rows = items[items["modality"] == modality]
        if len(rows):
            chosen[modality] = rows.iloc[np.sort(rng.choice(len(rows), min(sample, len(rows)), replace=False))]
    vectors = {modality: vectors_of(rows["id"].to_numpy(np.int64)) for modality, rows in chosen.items()}
    gaps = []
    for first, second in combinations(chosen, 2):
        a, b = vectors[first], vectors[second]
        count = min(len(a), len(b), 5_000)
        unmatched = float(np.mean(np.sum(a[rng.integers(0, len(a), count)] * b[rng.integers(0, len(b), count)], axis=1)))
        distance = float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))
        matched, pairs = None, 0
        if pair_column and pair_column in items.columns:
            left = pd.DataFrame({"pair": chosen[first][pair_column].to_numpy(), "a": np.arange(len(a))}).dropna()
            right = pd.DataFrame({"pair": chosen[second][pair_column].to_numpy(), "b": np.arange(len(b))}).dropna()
            joined = left.merge(right, on="pair")
            if len(joined) > sample:
                joined = joined.iloc[rng.choice(len(joined), sample, replace=False)]
            if len(joined):
                pairs = int(len(joined))
                matched = float(np.mean(np.sum(a[joined["a"].to_numpy()] * b[joined["b"].to_numpy()], axis=1)))
        gaps.append(ModalityGap(first, second, matched, unmatched, distance, pairs))
    return gaps
