"""Search over all modalities on the demo space: how often everyday words bring back more than texts.

For each of 50 everyday words the script runs ``space.search(word, k=10)`` (one ranking)
and ``space.search(word, per_modality=3)`` (the best three of each modality, grouped) and
prints: the share of words whose one-ranking top 10 holds more than one modality, and, for
the grouped search, the share whose best image / best clip is labelled with the word (that
is, whether the other modalities it brings back are relevant). Also the space's modality
gap. Usage::

    .venv/bin/python bench/modalities.py [SPACE]    # default data/spaces/emoji (built by `make demo`)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embedspace import Space
from embedspace.recipes.encoder_evaluation import EVERYDAY_WORDS

WORDS = EVERYDAY_WORDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", nargs="?", default="data/spaces/emoji")
    args = parser.parse_args()
    if not Path(args.space, "manifest.json").exists():
        sys.exit(f"no space at {args.space}; build the demo space first: make demo (or embedspace demo build --out {args.space})")
    space = Space.open(args.space)
    print(f"$ {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"space {space.path}: {len(space):,} items {space.info()['by_modality']}")
    mixed, relevant = 0, {"image": 0, "audio": 0}
    for word in WORDS:
        ranking = space.search(word, k=10)
        mixed += ranking["modality"].nunique() > 1
        grouped = space.search(word, per_modality=3)
        for modality in relevant:
            best = grouped[grouped["modality"] == modality]["label"]
            relevant[modality] += bool(len(best)) and word in str(best.iloc[0]).lower()
    count = len(WORDS)
    print(f"one ranking (k=10): {mixed}/{count} = {mixed / count:.2f} of everyday words bring back more than one modality")
    print(f"grouped (per_modality=3): every word brings back all modalities; the best image is labelled with the word for "
          f"{relevant['image']}/{count} = {relevant['image'] / count:.2f}, the best clip for {relevant['audio']}/{count} = {relevant['audio'] / count:.2f}")
    for row in space.modality_gap().itertuples():
        matched = "n/a" if row.matched != row.matched else f"{row.matched:.2f}"
        print(f"gap {row.first}-{row.second}: matched {matched} (n={row.pairs}), unmatched {row.unmatched:.2f}, centroids {row.centroid_distance:.2f} apart")


if __name__ == "__main__":
    main()
