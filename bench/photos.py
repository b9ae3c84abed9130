"""Sample photographs among the emoji captions: the image tower alone against the tower fused with the photo branch.

Each photo that ships with scikit-learn (china, flower) and, when it is installed,
scikit-image (chelsea the cat, coffee, rocket, astronaut, ...) is embedded twice with the
same weights: once with the image tower alone (``photo`` settings off), once fused with
the frozen ImageNet classifier (:mod:`embedspace.models.photo`; the model's own settings,
or the defaults when it has none). Each vector ranks the captions of the emoji dataset
(the texts the demo space holds). A photo counts when one of its right captions, listed
below and fixed before any run, is in the top 5. Usage::

    .venv/bin/python bench/photos.py [--data data/datasets/emoji] [--model emoji-mini]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from embedspace.models.config import PhotoConfig
from embedspace.models.model import EmbeddingModel
from embedspace.models.photo import photo_score, photo_share
from embedspace.models.registry import resolve_model
from embedspace.recipes.emoji import load_emoji_dataset

#: (package, file, right captions): a caption counts when it equals one listed, or matches a listed ``re:`` pattern.
PHOTOS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("sklearn", "china.jpg", ("Japanese castle", "castle", "classical building", "hindu temple", "shinto shrine", "place of worship")),
    ("sklearn", "flower.jpg", ("blossom", "cherry blossom", "hibiscus", "white flower", "rose", "tulip", "sunflower", "lotus", "bouquet", "wilted flower", "hyacinth")),
    ("skimage", "chelsea.png", ("cat", "cat face")),
    ("skimage", "coffee.png", ("hot beverage", "teacup without handle")),
    ("skimage", "rocket.jpg", ("rocket",)),
    ("skimage", "astronaut.png", (r"re:\bastronaut\b", "person")),
    ("skimage", "camera.png", ("camera", "movie camera", "video camera", "camera with flash", "man", "person")),
    ("skimage", "motorcycle_left.png", ("motorcycle", "motor scooter")),
    ("skimage", "coins.png", ("coin",)),
    ("skimage", "moon.png", (r"re:\bmoon$", r"re:\bmoon face$")),
    ("skimage", "hubble_deep_field.jpg", ("milky way", "star", "glowing star", "night with stars", "sparkles", "shooting star")),
    ("skimage", "retina.jpg", ("eye",)),
)


def photo_path(package: str, name: str) -> Path | None:
    """Where an installed package keeps a sample photo, or None when the package is not installed."""
    try:
        if package == "sklearn":
            import sklearn.datasets

            return Path(sklearn.datasets.__file__).parent / "images" / name
        import skimage

        return Path(skimage.__file__).parent / "data" / name
    except ImportError:
        return None


def is_right(caption: str, right: tuple[str, ...]) -> bool:
    return any(re.search(entry[3:], caption) if entry.startswith("re:") else caption == entry for entry in right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/datasets/emoji", help="the emoji dataset (embedspace data build)")
    parser.add_argument("--model", default="emoji-mini")
    args = parser.parse_args()
    if not Path(args.data, "emoji.parquet").is_file():
        sys.exit(f"no emoji dataset in {args.data}; build it first: embedspace data build --out {args.data}")
    print(f"$ {' '.join([Path(sys.executable).name] + sys.argv)}")
    config, weights = resolve_model(args.model)
    settings = config.photo or PhotoConfig()
    tower_only = EmbeddingModel.from_config(dataclasses.replace(config, photo=None), weights)
    fused = EmbeddingModel.from_config(dataclasses.replace(config, photo=settings), weights)
    captions = sorted(set(load_emoji_dataset(Path(args.data))["caption"]))
    caption_vectors = tower_only.embed_text(captions, progress=False)  # (C, D)
    print(f"model {args.model}; photo settings {settings}; {len(captions):,} captions")

    found = [(package, name, right, photo_path(package, name)) for package, name, right in PHOTOS]
    missing = sorted({package for package, _, _, path in found if path is None})
    if missing:
        print(f"not installed, their photos are left out: {', '.join(missing)} (scikit-image is `pip install scikit-image`)")
    rows = [(name, right, Image.open(path).convert("RGB")) for _, name, right, path in found if path is not None]
    images = [image for _, _, image in rows]
    scores = np.array([photo_score(image) for image in images])
    shares = photo_share(scores, settings)
    vectors = {"tower": tower_only.embed_images(images, progress=False), "fused": fused.embed_images(images, progress=False)}

    print("\n| photo | score | a | tower: rank of a right caption, top 3 | fused: rank, top 3 |")
    print("| --- | --- | --- | --- | --- |")
    hits = {"tower": 0, "fused": 0}
    for row, (name, right, _) in enumerate(rows):
        cells = []
        for kind, matrix in vectors.items():
            order = np.argsort(-(caption_vectors @ matrix[row]))
            rank = next(position for position, index in enumerate(order) if is_right(captions[index], right))
            hits[kind] += rank < 5
            cells.append(f"{rank + 1} ({', '.join(captions[index] for index in order[:3])})")
        print(f"| {name} | {scores[row]:.2f} | {shares[row]:.2f} | {cells[0]} | {cells[1]} |")
    count = len(rows)
    print(f"\nright caption in the top 5: tower alone {hits['tower']}/{count}, fused {hits['fused']}/{count}")


if __name__ == "__main__":
    main()
