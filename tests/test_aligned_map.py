"""The modality-aligned map: each modality's mean removed before projecting, stored beside the plain map."""

from __future__ import annotations

import numpy as np
import pytest

from embedspace import Space
from embedspace.cli import main as cli_main
from embedspace.maps import compute_space_projection, load_space_projection
from embedspace.projection import Projection


def gapped(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts and images of 4 topics; every image is shifted by one shared 'modality' vector (a modality gap)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).normal(size=(4, 384))
    gap = np.random.default_rng(8).normal(size=384) * 1.5
    topics = np.arange(count) % 4
    texts = centres[topics] + 0.35 * rng.normal(size=(count, 384))
    images = centres[topics] + gap + 0.35 * rng.normal(size=(count, 384))
    unit = lambda rows: (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(texts), unit(images), topics


def same_topic_texts_near_images(stored, topics: np.ndarray, count: int, k: int = 5) -> float:
    """Share of images whose k nearest points on the map include a text of their topic (ids: texts 0..count-1, then images)."""
    coordinates = stored.coordinates
    hits = 0
    for image in range(count, 2 * count):
        distances = np.linalg.norm(coordinates - coordinates[image], axis=1)
        distances[image] = np.inf
        near = np.argsort(distances)[:k]
        hits += any(point < count and topics[point] == topics[image - count] for point in near)
    return hits / count


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory, model: object) -> tuple[Space, np.ndarray]:
    texts, images, topics = gapped(120, seed=0)
    space = Space.create(tmp_path_factory.mktemp("aligned") / "space", model=model)
    space.add_vectors(texts, [f"t{i}" for i in range(120)], modality="text")
    space.add_vectors(images, [f"i{i}" for i in range(120)], modality="image")
    return space, topics


def test_the_aligned_view_puts_images_next_to_their_texts(space) -> None:
    space, topics = space
    settings = dict(n_components=2, n_neighbors=10)
    plain = compute_space_projection(space, 2, Projection(**settings))
    aligned = compute_space_projection(space, 2, Projection(**settings), aligned=True)
    assert not plain.aligned and aligned.aligned and set(aligned.modality_means) == {"text", "image"}
    assert same_topic_texts_near_images(plain, topics, 120) < 0.2  # the gap: images on their own island
    assert same_topic_texts_near_images(aligned, topics, 120) > 0.8
    # a view: the plain map is still stored and unchanged, searches are untouched
    assert aligned.folder.parent.name == "umap-2d-aligned" and plain.folder.parent.name == "umap-2d"
    np.testing.assert_array_equal(load_space_projection(space, 2).coordinates, plain.coordinates)


def test_the_aligned_view_round_trips_and_places_queries_by_modality(space) -> None:
    space, topics = space
    stored = compute_space_projection(space, 2, Projection(n_components=2, n_neighbors=10), aligned=True)
    loaded = load_space_projection(space, 2, aligned=True)
    assert loaded.aligned and list(loaded.modality_means) == ["text", "image"]
    np.testing.assert_allclose(loaded.modality_means["image"], stored.modality_means["image"])
    image = space.vectors_of([120])[0]  # item 120 is the first image
    np.testing.assert_allclose(loaded.transform(image, modality="image")[0], stored.coordinates[120], atol=1e-4)
    np.testing.assert_allclose(loaded.transform(image)[0], stored.coordinates[120], atol=1e-4)  # nearest mean: image
    with pytest.raises(ValueError, match="no 'audio' items"):
        loaded.transform(image, modality="audio")
    damaged = loaded.folder / "modality_means.npy"
    np.save(damaged, np.zeros((3, 384), np.float32))
    assert load_space_projection(space, 2, aligned=True) is None  # not trusted: recomputed on next use


def test_the_project_command_computes_the_aligned_view(space, capsys) -> None:
    space, _ = space
    cli_main(["project", str(space.path), "--dims", "2", "--align-modalities", "--refit"])
    assert "2-d modality-aligned map of 240 items" in capsys.readouterr().out
