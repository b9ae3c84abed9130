"""Named clusters: found on the map, named from the nearest texts in the space, stored with the map."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedspace import Space, SpaceError
from embedspace.clusters import find_clusters
from embedspace.maps import compute_space_projection
from embedspace.projection import Projection

TOPICS = ("apple", "car", "ocean")


def topic_vectors(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around three well-separated centres (one per topic), and each one's topic."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(42).normal(size=(3, 384)) * 3
    topics = np.arange(count) % 3
    vectors = centres[topics] + rng.normal(size=(count, 384))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), topics


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory, model: object) -> tuple[Space, object, np.ndarray]:
    space = Space.create(tmp_path_factory.mktemp("clusters") / "space", model=model)
    texts, text_topics = topic_vectors(150, seed=0)
    space.add_vectors(texts, [f"{TOPICS[topic]} {number}" for number, topic in enumerate(text_topics)], modality="text")
    images, image_topics = topic_vectors(150, seed=1)
    space.add_vectors(images, [f"picture {number}" for number in range(150)], modality="image")
    stored = compute_space_projection(space, 2, Projection(n_components=2, n_neighbors=10))
    return space, stored, np.concatenate([text_topics, image_topics])


def test_blobs_on_a_map_are_found_and_numbered_by_size() -> None:
    rng = np.random.default_rng(0)
    sizes = (300, 200, 100)
    points = np.concatenate([rng.normal(loc=(10 * number, 0), scale=0.3, size=(size, 2)) for number, size in enumerate(sizes)])
    labels = find_clusters(points, sample=400)  # 400 clustered, 200 joining their nearest sampled point
    assert [int((labels == cluster).sum()) for cluster in range(3)] == list(sizes) and labels.max() == 2
    assert (find_clusters(points[:8]) == -1).all()  # too few points for any cluster


def test_each_cluster_is_named_from_the_texts_nearest_its_centre(mapped) -> None:
    space, stored, topics = mapped
    table = space.clusters()
    assert list(table.columns) == ["cluster", "name", "size", "x", "y"] and len(table) == 3
    assert table["size"].is_monotonic_decreasing and table["size"].sum() <= len(space)
    for info in stored.cluster_info:
        members = stored.clusters == info.cluster
        topic = np.bincount(topics[members]).argmax()  # ids follow add order: texts then images
        assert (topics[members] == topic).mean() > 0.95  # a cluster holds one topic, texts and images together
        words = info.name.split(" · ")
        assert len(words) == 3 and all(word.startswith(TOPICS[topic]) for word in words)  # texts name it, never "picture"


def test_clusters_are_stored_with_the_map_and_a_damaged_table_is_not_trusted(mapped, caplog) -> None:
    space, stored, _ = mapped
    loaded = space.store.read_map(2, load_model=False)
    np.testing.assert_array_equal(loaded.clusters, stored.clusters)
    assert loaded.cluster_info == stored.cluster_info
    table = loaded.folder / "clusters.json"
    good = table.read_text()
    try:
        entries = json.loads(good)
        entries[0]["size"] = "many"
        table.write_text(json.dumps(entries))
        assert space.store.read_map(2, load_model=False) is None and "clusters.json" in caplog.text
        with pytest.raises(SpaceError, match="no 2-d map"):
            space.clusters()
    finally:
        table.write_text(good)
