"""Maps at scale: a space's map fitted on a sample (lowered by the setting), the rest placed by transform in batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedspace import Space
from embedspace.cli import main as cli_main
from embedspace.maps import compute_space_projection, load_space_projection
from embedspace.projection import Projection
from embedspace.store_maps import projection_folder

COUNT, SAMPLE, LISTS = 300, 160, 4  # 160 fitted (4 lists of >= 39), 140 placed by transform


def clustered(count: int, dim: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` unit vectors around 3 well-separated centres, and their cluster labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 3
    labels = np.arange(count) % 3
    vectors = centres[labels] + rng.normal(size=(count, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), labels


def small_projection() -> Projection:
    """The default Projection with its scale settings lowered: a 160-item fit sample, 4 lists for transform's search."""
    return Projection(n_components=2, n_neighbors=5, sample_size=SAMPLE, n_lists=LISTS, n_probe=2)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory, model: object) -> dict:
    """One space of 300 items (240 texts, 60 images) mapped once with a lowered fit sample, in batches of 40."""
    space = Space.create(tmp_path_factory.mktemp("maps") / "space", model=model)
    vectors, labels = clustered(COUNT)
    space.add_vectors(vectors[:240], [f"t{i}" for i in range(240)], modality="text")
    space.add_vectors(vectors[240:], [f"i{i}" for i in range(60)], modality="image")
    steps: list[tuple[float, str]] = []
    stored = compute_space_projection(space, 2, small_projection(), progress=lambda fraction, message: steps.append((fraction, message)), batch_rows=40)
    return {"space": space, "stored": stored, "steps": steps, "vectors": vectors, "labels": labels}


def test_a_map_is_fitted_on_a_sample_and_the_rest_placed_with_finite_coordinates(mapped: dict) -> None:
    stored, labels = mapped["stored"], mapped["labels"]
    projection = stored.projection
    assert projection.method_ == "umap" and projection.n_samples_fit_ == SAMPLE and projection.n_lists_ == LISTS
    sampled = np.zeros(COUNT, bool)
    sampled[projection.sample_indices_] = True
    assert stored.coordinates.shape == (COUNT, 2) and stored.coordinates.dtype == np.float32
    assert np.isfinite(stored.coordinates[sampled]).all() and np.isfinite(stored.coordinates[~sampled]).all()
    np.testing.assert_array_equal(stored.coordinates[sampled], projection.embedding_)  # the fitted items keep UMAP's places
    # placed items land among their own cluster: their nearest fitted point on the map is of the same cluster
    fitted = stored.coordinates[sampled]
    nearest = np.linalg.norm(stored.coordinates[~sampled][:, None] - fitted[None], axis=2).argmin(axis=1)
    assert (labels[sampled][nearest] == labels[~sampled]).mean() > 0.95


def test_the_fit_sample_keeps_each_modality_share(mapped: dict) -> None:
    projection = mapped["stored"].projection
    images = (projection.sample_indices_ >= 240).sum()  # items 240.. are the 60 images: 20% of the space
    assert images == round(SAMPLE * 60 / COUNT)


def test_placing_reports_progress_per_batch(mapped: dict) -> None:
    fractions = [fraction for fraction, _ in mapped["steps"]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    placed = [message for _, message in mapped["steps"] if message.startswith("placed")]
    assert placed == [f"placed {done} of 140 more points" for done in (40, 80, 120, 140)]  # one per batch of 40


def test_the_stored_map_records_its_sample_and_round_trips_without_pickle(mapped: dict) -> None:
    space, stored = mapped["space"], mapped["stored"]
    current = json.loads((projection_folder(space.path, 2) / "current.json").read_text())
    assert current["count"] == COUNT and current["fit_sample"] == SAMPLE and current["method"] == "umap"
    config = json.loads((stored.folder / "config.json").read_text())
    assert config["n_samples_fit"] == SAMPLE and config["n_lists"] == LISTS and config["params"]["sample_size"] == SAMPLE
    assert sorted(path.name for path in stored.folder.iterdir()) == ["clusters.json", "clusters.npy", "config.json", "coordinates.npy", "ids.npy", "state.npz"]
    with np.load(stored.folder / "state.npz", allow_pickle=False) as state:  # arrays only
        assert state["centroids"].shape == (LISTS, 384) and state["lists"].shape == (SAMPLE,)
    loaded = load_space_projection(space)
    np.testing.assert_array_equal(loaded.coordinates, stored.coordinates)
    rest = np.setdiff1d(np.arange(COUNT), loaded.projection.sample_indices_)
    vectors = mapped["vectors"]
    # the reloaded model (its neighbour lists rebuilt from the stored arrays) places items exactly where the map has them
    np.testing.assert_array_equal(loaded.transform(vectors[rest]), stored.coordinates[rest])


def test_placing_is_deterministic_for_a_seed(mapped: dict) -> None:
    space, stored = mapped["space"], mapped["stored"]
    again = compute_space_projection(space, 2, small_projection(), refit=True, batch_rows=100)
    np.testing.assert_array_equal(again.projection.sample_indices_, stored.projection.sample_indices_)
    np.testing.assert_array_equal(again.coordinates, stored.coordinates)
    other = small_projection()
    other.random_state = 1
    assert not np.array_equal(other.choose_sample(COUNT), stored.projection.sample_indices_)


def test_the_project_command_takes_a_fit_sample(mapped: dict, capsys: pytest.CaptureFixture) -> None:
    space = mapped["space"]
    assert cli_main(["project", str(space.path), "--dims", "3", "--fit-sample", "200", "--engine", "local"]) == 0
    assert "3-d map of 300 items (umap, fitted on 200)" in capsys.readouterr().out
    assert json.loads((projection_folder(space.path, 3) / "current.json").read_text())["fit_sample"] == 200
    assert cli_main(["project", str(space.path), "--fit-sample", "3"]) == 2
    assert "--fit-sample must be at least 17" in capsys.readouterr().err


def test_a_bad_batch_size_is_refused(mapped: dict) -> None:
    with pytest.raises(ValueError, match="batch_rows must be a positive integer"):
        compute_space_projection(mapped["space"], 2, small_projection(), refit=True, batch_rows=0)
