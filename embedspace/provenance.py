"""Where a generated image came from: stamped on the image when it is made, recorded when it is added.

The generator (:meth:`embedspace.Generator.generate`) stamps every image it makes with
its condition: a description ("kitten", "a → b (3/8)") and the ``(D,)`` float32 point
of the space it was generated from, under :data:`GENERATED_KEY` in the PIL image's
``info``. When such an image is added to a space (:meth:`embedspace.Space.add_images`),
the item records :meth:`Provenance.columns`: ``generated=True``, ``condition`` and
``fidelity``, the cosine between the image's own embedding and that point.

Only in-memory images carry the stamp (PIL does not save it), so a file read from disk
is never taken for a generated image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

#: Key in a generated PIL image's ``info`` holding ``{"condition": str, "vector": (D,) float32}``.
GENERATED_KEY = "embedspace_condition"


@dataclass(frozen=True)
class Provenance:
    """A generated image's condition.

    Attributes:
        condition: what the point is ("kitten", "item 12", "a → b (3/8)").
        vector: ``(D,)`` float32, the unit vector the image was generated from.
    """

    condition: str
    vector: np.ndarray

    def columns(self, embedding: np.ndarray) -> dict[str, Any]:
        """The item columns of the image whose ``(D,)`` unit embedding is ``embedding``.

        ``generated=True``, ``condition``, and ``fidelity`` (cosine of the embedding and the
        condition, in [-1, 1]; left out when the two have different dimensions, i.e. the
        image was generated in another model's space).
        """
        columns: dict[str, Any] = {"generated": True, "condition": self.condition}
        embedding = np.asarray(embedding, dtype=np.float32)
        if embedding.shape == self.vector.shape:
            columns["fidelity"] = float(embedding @ self.vector)
        return columns


def stamp(image: Image.Image, condition: str, vector: np.ndarray) -> None:
    """Record on ``image`` (in its ``info``) that it was generated from ``vector`` (``(D,)`` float32), described as ``condition``."""
    image.info[GENERATED_KEY] = {"condition": str(condition), "vector": np.array(vector, dtype=np.float32).reshape(-1)}


def read(image: Image.Image) -> Provenance | None:
    """The provenance stamped on ``image`` by :func:`stamp`, or None (not generated, or a malformed stamp)."""
    stamped = image.info.get(GENERATED_KEY)
    if not isinstance(stamped, dict) or not isinstance(stamped.get("condition"), str):
        return None
    try:
        vector = np.array(stamped.get("vector"), dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if vector.ndim != 1 or vector.size == 0 or not np.isfinite(vector).all():
        return None
    return Provenance(stamped["condition"], vector)
