"""Projection: the UMAP wrapper's contract, the PCA rule for tiny inputs, and a space's stored map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedspace import Space
from embedspace.maps import compute_space_projection, load_space_projection, space_projection
from embedspace.projection import FORMAT_VERSION, METRICS, Projection
from embedspace.store_maps import projection_folder


def clusters(count: int = 120, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` unit vectors around 3 well-separated centres, and their cluster labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 4
    labels = np.arange(count) % 3
    vectors = centres[labels] + rng.normal(size=(count, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), labels


def test_constructor_only_stores_arguments_and_fit_validates_them() -> None:
    projection = Projection(n_components=7, metric="nonsense")  # no error yet: sklearn contract
    assert projection.get_params()["metric"] == "nonsense"
    vectors, _ = clusters(20)
    with pytest.raises(ValueError, match="n_components must be 2 or 3"):
        projection.fit(vectors)
    with pytest.raises(ValueError, match="metric must be one of " + ", ".join(METRICS)):
        Projection(metric="hamming").fit(vectors)
    with pytest.raises(ValueError, match="n_neighbors must be an integer >= 2"):
        Projection(n_neighbors=1).fit(vectors)
    with pytest.raises(ValueError, match=r"min_dist must be a number in \[0, 1\]"):
        Projection(min_dist=1.5).fit(vectors)
    with pytest.raises(ValueError, match="sample_size"):
        Projection(sample_size=3).fit(vectors)


def test_bad_inputs_are_refused_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="zero vectors"):
        Projection().fit(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        Projection().fit(np.full((3, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="not fitted"):
        Projection().transform(np.ones((1, 4), np.float32))
    fitted = Projection().fit(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="4-dimensional"):
        fitted.transform(np.ones((1, 5), np.float32))


def test_tiny_inputs_are_mapped_with_pca_deterministically() -> None:
    vectors, _ = clusters(10)
    first = Projection(n_neighbors=15).fit(vectors)  # 10 < 15 + 2
    second = Projection(n_neighbors=15).fit(vectors)
    assert first.method_ == "pca" and first.embedding_.shape == (10, 2)
    np.testing.assert_array_equal(first.embedding_, second.embedding_)
    np.testing.assert_allclose(first.transform(vectors), first.embedding_, atol=1e-5)
    assert first.transform(vectors[0]).shape == (1, 2)  # a single (D,) vector
    assert Projection(n_components=3).fit(vectors[:1]).embedding_.tolist() == [[0.0, 0.0, 0.0]]
    assert Projection(n_components=3).fit(vectors[:2]).embedding_.shape == (2, 3)  # rank 1 < 3 axes


def test_pca_projection_saves_and_loads(tmp_path: Path) -> None:
    vectors, _ = clusters(8)
    projection = Projection(n_components=3).fit(vectors)
    projection.save(tmp_path / "map")
    loaded = Projection.load(tmp_path / "map")
    assert loaded.get_params() == projection.get_params() and loaded.method_ == "pca"
    np.testing.assert_allclose(loaded.transform(vectors), projection.transform(vectors))
    with pytest.raises(ValueError, match="no projection"):
        Projection.load(tmp_path / "nothing")


def write_umap_state(folder: Path, fit_vectors: np.ndarray, embedding: np.ndarray, n_neighbors: int = 5) -> None:
    """A stored UMAP-method map as :meth:`Projection.save` writes it (arrays and JSON), without running UMAP."""
    folder.mkdir(parents=True)
    params = {**Projection(n_neighbors=n_neighbors).get_params(), "sample_size": None}
    config = {"class": "Projection", "format_version": FORMAT_VERSION, "params": params, "method": "umap",
              "n_features_in": fit_vectors.shape[1], "n_samples_fit": len(fit_vectors)}
    (folder / "config.json").write_text(json.dumps(config))
    np.savez(folder / "state.npz", embedding=embedding, sample_indices=np.arange(len(fit_vectors)), fit_vectors=fit_vectors)


def test_stored_umap_map_places_new_vectors_among_their_nearest_fitted_neighbours(tmp_path: Path) -> None:
    vectors, labels = clusters(60)
    centres = np.array([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0]], np.float32)
    embedding = (centres[labels] + np.random.default_rng(1).normal(size=(60, 2))).astype(np.float32)
    write_umap_state(tmp_path / "map", vectors, embedding)
    loaded = Projection.load(tmp_path / "map")
    assert loaded.method_ == "umap" and not (tmp_path / "map" / "umap.pkl").exists()
    np.testing.assert_array_equal(loaded.transform(vectors), embedding)  # a fitted vector lands on its own point
    new, new_labels = clusters(30, seed=0)
    new = new + np.random.default_rng(2).normal(scale=0.05, size=new.shape).astype(np.float32)
    placed = loaded.transform(new)
    assert placed.shape == (30, 2) and placed.dtype == np.float32
    nearest_centre = np.linalg.norm(placed[:, None] - centres[None], axis=2).argmin(axis=1)
    assert (nearest_centre == new_labels).all()  # each lands in its own cluster's region of the map
    np.testing.assert_array_equal(Projection.load(tmp_path / "map").transform(new), placed)  # deterministic across loads
    for metric in ("euclidean", "correlation", "manhattan"):
        loaded.metric = metric
        loaded.__dict__.pop("_fit_prepared", None)
        nearest_centre = np.linalg.norm(loaded.transform(new)[:, None] - centres[None], axis=2).argmin(axis=1)
        assert (nearest_centre == new_labels).all(), metric


def test_a_stored_map_with_mismatched_arrays_is_refused_naming_the_file(tmp_path: Path) -> None:
    vectors, labels = clusters(20)
    write_umap_state(tmp_path / "map", vectors, np.zeros((19, 2), np.float32))
    with pytest.raises(ValueError, match=r"state.npz: array 'embedding'.*\[20, 2\]"):
        Projection.load(tmp_path / "map")


@pytest.fixture(scope="module")
def umap_fit() -> tuple[Projection, np.ndarray, np.ndarray, list[tuple[float, str]], np.ndarray]:
    """One UMAP fit (numba compiles for ~30 s, hence ``slow``): 120 vectors, fitted on a sample of 80, the rest transformed."""
    vectors, labels = clusters(120)
    steps: list[tuple[float, str]] = []
    projection = Projection(n_neighbors=5, sample_size=80)
    coordinates = projection.fit_transform(vectors, progress=lambda fraction, message: steps.append((fraction, message)))
    return projection, vectors, coordinates, steps, labels


@pytest.mark.slow
def test_umap_fits_a_sample_and_places_the_rest_with_transform(umap_fit: tuple) -> None:
    projection, vectors, coordinates, steps, labels = umap_fit
    assert projection.method_ == "umap" and projection.n_samples_fit_ == 80
    assert coordinates.shape == (120, 2) and coordinates.dtype == np.float32 and np.isfinite(coordinates).all()
    np.testing.assert_array_equal(coordinates[projection.sample_indices_], projection.embedding_)
    # clusters stay apart on the map: each point's nearest map neighbour is from its own cluster
    distances = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(axis=1)] == labels).mean() > 0.95
    fractions = [fraction for fraction, _ in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and "placed 40 of 40" in steps[-1][1]


@pytest.mark.slow
def test_umap_projection_round_trips_through_save_and_load(umap_fit: tuple, tmp_path: Path) -> None:
    projection, vectors, _, _, _ = umap_fit
    projection.save(tmp_path / "map")
    assert json.loads((tmp_path / "map" / "config.json").read_text())["method"] == "umap"
    assert sorted(path.name for path in (tmp_path / "map").iterdir()) == ["config.json", "state.npz"]  # no pickle
    loaded = Projection.load(tmp_path / "map")
    np.testing.assert_array_equal(loaded.transform(vectors), projection.transform(vectors))


@pytest.fixture
def space(tmp_path: Path, model: object) -> Space:
    space = Space.create(tmp_path / "space", model=model)
    vectors, _ = clusters(12, dim=384)
    space.add_vectors(vectors, [f"v{i}" for i in range(12)])
    return space


def test_space_map_is_stored_stamped_with_the_revision(space: Space) -> None:
    assert load_space_projection(space) is None
    stored = compute_space_projection(space, 2)
    assert stored.revision == space.revision and stored.ids.tolist() == space.items["id"].tolist()
    current = json.loads((projection_folder(space.path, 2) / "current.json").read_text())
    assert current == {**current, "revision": space.revision, "count": 12, "method": "pca"}
    loaded = load_space_projection(space)
    np.testing.assert_array_equal(loaded.coordinates, stored.coordinates)
    assert space_projection(space, 2).revision == space.revision
    assert load_space_projection(space, 3) is None  # each dimension has its own map
    quick = load_space_projection(space, load_model=False)  # coordinates only, for drawing
    assert quick.projection is None
    with pytest.raises(ValueError, match="without its projection model"):
        quick.transform(space.vectors[:1])
    np.testing.assert_allclose(quick.with_model().transform(space.vectors[:3]), stored.coordinates[:3], atol=1e-5)


def test_stale_map_is_extended_with_transform_or_refitted(space: Space) -> None:
    before = compute_space_projection(space, 2)
    old_folder = projection_folder(space.path, 2) / f"r{before.revision:08d}"
    new_ids = space.add_vectors(clusters(2, dim=384, seed=1)[0], ["new 1", "new 2"])
    assert load_space_projection(space) is None  # stale: the revision moved
    assert load_space_projection(space, allow_stale=True).revision == before.revision
    after = compute_space_projection(space, 2)
    assert after.revision == space.revision and len(after.ids) == 14
    np.testing.assert_array_equal(after.coordinates[:12], before.coordinates)  # old points keep their place
    np.testing.assert_allclose(after.coordinates[after.positions(new_ids)], before.transform(space.vectors[12:]))
    assert not old_folder.exists()
    refitted = compute_space_projection(space, 2, refit=True)
    assert refitted.projection is not after.projection and refitted.projection.n_samples_fit_ == 14
    assert after.positions(np.array([new_ids[0], 10_000])).tolist()[1] == -1


def test_space_map_of_an_empty_space_is_an_error(tmp_path: Path, model: object) -> None:
    empty = Space.create(tmp_path / "empty", model=model)
    with pytest.raises(ValueError, match="empty"):
        compute_space_projection(empty, 2)


def lists_state(n_lists: int = 4, n_probe: int = 4) -> tuple[dict, dict]:
    """A fitted UMAP-method state (no UMAP run) whose fit vectors are split into lists around ``n_lists`` of them."""
    vectors, labels = clusters(200)
    embedding = (np.array([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0]])[labels] + np.random.default_rng(1).normal(size=(200, 2))).astype(np.float32)
    centroids = vectors[:n_lists]
    params = Projection(n_neighbors=5, n_lists=n_lists, n_probe=n_probe).get_params()
    config = {"class": "Projection", "format_version": FORMAT_VERSION, "params": params, "method": "umap",
              "n_features_in": 16, "n_samples_fit": 200, "n_lists": n_lists}
    arrays = {"embedding": embedding, "sample_indices": np.arange(200), "fit_vectors": vectors,
              "centroids": centroids, "lists": (vectors @ centroids.T).argmax(axis=1).astype(np.int64)}
    return config, arrays


def test_transform_searching_every_list_places_as_the_exact_search_does() -> None:
    config, arrays = lists_state(n_probe=4)
    with_lists = Projection.from_state(config, arrays)
    exact_arrays = {name: array for name, array in arrays.items() if name not in ("centroids", "lists")}
    exact = Projection.from_state({**config, "n_lists": 0}, exact_arrays)
    new, new_labels = clusters(50, seed=0)  # the same centres as the fitted vectors
    new = new + np.random.default_rng(4).normal(scale=0.05, size=(50, 16)).astype(np.float32)
    np.testing.assert_allclose(with_lists.transform(new), exact.transform(new), atol=1e-4)
    np.testing.assert_array_equal(with_lists.transform(arrays["fit_vectors"]), arrays["embedding"])  # a fitted vector lands on its point
    one_list = Projection.from_state({**config, "params": {**config["params"], "n_probe": 1}}, arrays).transform(new)
    centres = np.array([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert (np.linalg.norm(one_list[:, None] - centres[None], axis=2).argmin(axis=1) == new_labels).all()  # one list: approximate, same region


def test_state_round_trips_and_damaged_lists_are_refused(tmp_path: Path) -> None:
    config, arrays = lists_state()
    projection = Projection.from_state(config, arrays)
    saved_config, saved_arrays = projection.state()
    assert saved_config == config and sorted(saved_arrays) == sorted(arrays)
    projection.save(tmp_path / "map")
    new = clusters(10, seed=5)[0]
    np.testing.assert_array_equal(Projection.load(tmp_path / "map").transform(new), projection.transform(new))
    with pytest.raises(ValueError, match="'lists' names lists outside"):
        Projection.from_state(config, {**arrays, "lists": arrays["lists"] + 4})
    with pytest.raises(ValueError, match="array 'centroids'"):
        Projection.from_state(config, {**arrays, "centroids": arrays["centroids"][:3]})
    with pytest.raises(ValueError, match="n_lists must be an integer"):
        Projection.from_state({**config, "n_lists": 500}, arrays)
    with pytest.raises(ValueError, match="n_lists must be None"):
        Projection(n_lists=-1).fit(arrays["fit_vectors"])


def test_the_fit_sample_is_seeded_and_keeps_each_stratum_share() -> None:
    strata = np.array(["text"] * 900 + ["image"] * 95 + ["audio"] * 5)
    projection = Projection(sample_size=100)
    rows = projection.choose_sample(1000, strata)
    assert len(rows) == 100 and (np.diff(rows) > 0).all()
    # shares 90, 9.5, 0.5: the leftover row goes to the first label (sorted) with the largest remainder, audio
    assert [int((strata[rows] == name).sum()) for name in ("text", "image", "audio")] == [90, 9, 1]
    np.testing.assert_array_equal(projection.choose_sample(1000, strata), rows)  # same seed, same rows
    assert not np.array_equal(Projection(sample_size=100, random_state=1).choose_sample(1000, strata), rows)
    assert projection.choose_sample(80).tolist() == list(range(80))  # small inputs are fitted whole
    assert Projection().sample_size == 200_000
