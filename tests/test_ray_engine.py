"""The Ray engine beside the local one: index shards filled on workers and merged, map batches placed on workers.

Both run on a real local Ray (2 CPUs, the session's ``local_ray``) and must give what the
local engine gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedspace import Space
from embedspace.engine import map_batches
from embedspace.errors import SpaceError
from embedspace.maps import compute_space_projection
from embedspace.projection import Projection
from tests.test_maps_scale import clustered as three_clusters
from tests.test_scale import clustered, labels


def test_map_batches_returns_results_in_the_order_of_the_batches(local_ray) -> None:
    batches = [list(range(value)) for value in range(12)]  # a builtin: test modules are not importable on workers
    assert map_batches(sum, batches, engine="ray", workers=2) == map_batches(sum, batches) == [value * (value - 1) // 2 for value in range(12)]


def test_index_shards_built_on_ray_merge_into_the_local_engine_s_index(tmp_path, model, local_ray) -> None:
    space = Space.create(tmp_path / "space", model=model)
    vectors = clustered(6000)
    for start in range(0, 6000, 2000):  # three parts
        space.add_vectors(vectors[start : start + 2000], labels(2000, f"p{start}-"))
    space.remove(list(range(10, 20)))
    local = space.build_index("IVF32_HNSW16,PQ16", train_sample=2000)
    queries = vectors[::300]
    expected = [space._ann.index.search(query[None], 20, None, space._ann.settings) for query in queries]
    on_ray = space.build_index(local, train_sample=2000, engine="ray", workers=2)
    assert on_ray == local and len(space._ann.index) == len(space) == 5990
    for query, (scores, ids) in zip(queries, expected):
        got_scores, got_ids = space._ann.index.search(query[None], 20, None, space._ann.settings)
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_allclose(got_scores, scores, atol=1e-6)
    assert space.search(vectors[5], k=1)["id"].iloc[0] == 5


def test_map_batches_placed_on_ray_equal_the_local_loop(tmp_path, model, local_ray) -> None:
    space = Space.create(tmp_path / "space", model=model)
    vectors, _ = three_clusters(300)
    space.add_vectors(vectors, [f"v{i}" for i in range(300)])
    settings = dict(n_components=2, n_neighbors=5, sample_size=160, n_lists=4, n_probe=2)
    local = compute_space_projection(space, 2, Projection(**settings), refit=True, batch_rows=40)
    on_ray = compute_space_projection(space, 2, Projection(**settings), refit=True, batch_rows=40, engine="ray", workers=2)
    np.testing.assert_array_equal(on_ray.ids, local.ids)
    np.testing.assert_allclose(on_ray.coordinates, local.coordinates, atol=1e-5)


def test_an_unreachable_address_fails_in_one_line_before_an_index_or_map_is_written(tmp_path, model) -> None:
    space = Space.create(tmp_path / "space", model=model)
    space.add_vectors(clustered(400), labels(400))
    for run in (lambda: space.build_index("IVF4,Flat", engine="ray", address="127.0.0.1:9"),
                lambda: compute_space_projection(space, 2, engine="ray", address="127.0.0.1:9")):
        with pytest.raises(SpaceError) as caught:
            run()
        assert "cannot reach a Ray cluster at 127.0.0.1:9" in str(caught.value) and "\n" not in str(caught.value)
    assert not (space.path / "index").exists() and space.store.read_map(2) is None
