"""A space stays consistent under misuse, crashes and damaged files (issue 16)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedspace import Space, SpaceError
from embedspace.check import check_space
from embedspace.store import MAX_SEGMENTS, PENDING

EMBEDSPACE = str(Path(sys.executable).parent / "embedspace")


def vectors(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 384)).astype(np.float32)


def files_on_disk(space: Space) -> set[str]:
    return {path.relative_to(space.path).as_posix() for path in space.path.rglob("*") if path.is_file() and path.name != ".lock"}


def test_a_failed_refresh_keeps_the_old_view_and_loses_no_other_writers_items(tmp_path, model):
    Space.create(tmp_path / "race", model=model)
    first = Space.open(tmp_path / "race", model=model)
    first.add_vectors(vectors(5), ["a"] * 5)
    second = Space.open(tmp_path / "race", model=model)
    theirs = second.add_vectors(vectors(5, 1), ["b"] * 5)
    newest = sorted((tmp_path / "race" / "segments").glob("*.npy"))[-1]
    newest.rename(tmp_path / "hidden")  # the file vanishes while `first` refreshes
    with pytest.raises(SpaceError, match="missing"):
        first.refresh()
    (tmp_path / "hidden").rename(newest)
    for number in range(MAX_SEGMENTS + 6):  # enough writes to compact
        first.add_vectors(vectors(1, 10 + number), ["a"])
    assert set(theirs) <= set(Space.open(tmp_path / "race", model=model).items["id"])


def test_compaction_leaves_no_unnamed_parts(tmp_path, model):
    space = Space.create(tmp_path / "leak", model=model)
    for number in range(MAX_SEGMENTS + 3):
        space.add_vectors(vectors(1, number), [str(number)])
    manifest = json.loads((space.path / "manifest.json").read_text())
    named = {f"{name}{suffix}" for name in manifest["segments"] for suffix in (".npy", ".parquet")}
    retired = {name for entry in manifest["retired"] for name in entry["files"]}
    on_disk = {name for name in files_on_disk(space) if name.startswith("segments/")}
    assert on_disk <= named | retired
    assert len(manifest["segments"]) <= 3 and len(Space.open(space.path, model=model)) == MAX_SEGMENTS + 3


def test_mixed_metadata_kinds_are_refused_by_name_and_the_space_keeps_working(tmp_path, model):
    space = Space.create(tmp_path / "drift", model=model)
    space.add_vectors(vectors(1), ["a"], metadata={"x": 1})
    with pytest.raises(SpaceError, match="'x' holds number values"):
        space.add_vectors(vectors(1, 1), ["b"], metadata={"x": "one"})
    for number in range(MAX_SEGMENTS + 2):
        space.add_vectors(vectors(1, number + 2), [str(number)], metadata={"x": number})
    assert len(Space.open(space.path, model=model)) == MAX_SEGMENTS + 3


def test_a_crashed_writes_thumbnails_are_swept_and_never_inherited(tmp_path, model, media):
    space = Space.create(tmp_path / "crash", model=model)
    space.add_texts(["cat"])
    next_id = json.loads((space.path / "manifest.json").read_text())["next_id"]
    # what a write killed before its commit leaves behind
    (space.path / PENDING).write_text(json.dumps({"ids": [next_id, next_id + 2], "segment": "segments/00000009"}))
    shutil.copyfile(media["red"], space.path / "thumbnails" / f"{next_id}.png")
    (space.path / "segments" / ".00000009.npy.tmp-999999").write_bytes(b"half")
    (space.path / "segments" / "00000009.parquet").write_bytes(b"half")
    report = check_space(space.path)
    assert PENDING in report.leftovers
    [new] = space.add_texts(["dog"])
    assert new == next_id and space.thumbnail_path(new) is None
    leftovers = {name for name in files_on_disk(space) if "tmp-" in name or name == PENDING or name == "segments/00000009.parquet"}
    assert leftovers == set()


@pytest.mark.parametrize("content", ["[]", "null", '"x"', "1", "{}", '{"format_version": 1}', "not json", '{"format_version": 99}'])
def test_a_damaged_manifest_gets_one_clear_error_naming_it(space, content):
    (space.path / "manifest.json").write_text(content)
    with pytest.raises(SpaceError, match="manifest.json") as error:
        Space.open(space.path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("change", [
    lambda manifest: manifest.update(segments=["../../outside"]),
    lambda manifest: manifest.update(segments=None),
    lambda manifest: manifest.update(model=None),
    lambda manifest: manifest.pop("index"),
    lambda manifest: manifest.update(removed="/etc/passwd"),
    lambda manifest: manifest.update(next_id="7"),
])
def test_a_manifest_of_the_wrong_shape_is_refused(space, change):
    manifest = json.loads((space.path / "manifest.json").read_text())
    change(manifest)
    (space.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SpaceError, match="manifest.json"):
        Space.open(space.path)


def test_a_damaged_part_is_named_and_check_repair_sets_it_aside(space, model):
    part = sorted((space.path / "segments").glob("*.npy"))[0]
    np.save(part, np.ones((1, 384), np.float32))  # wrong row count
    with pytest.raises(SpaceError, match=f"{part.name}.*holds 1 vectors"):
        Space.open(space.path)
    report = check_space(space.path)
    assert not report.ok and report.damaged_parts
    repaired = check_space(space.path, repair=True)
    assert (space.path / "quarantine" / part.name).is_file() and repaired.repaired
    reopened = Space.open(space.path, model=model)
    assert len(reopened) == 4 and reopened.search("kitten", k=1)["label"][0] != "kitten"  # the damaged part's 8 texts left


def test_a_space_cannot_make_embedspace_load_a_model_from_outside_it(space, tmp_path):
    manifest = json.loads((space.path / "manifest.json").read_text())
    manifest["model"].update(id="other", source=str(tmp_path))
    (space.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SpaceError, match="outside itself"):
        Space.open(space.path).search("cat")


def test_api_misuse_gets_clear_errors_and_changes_nothing(space):
    before = space.revision
    with pytest.raises(SpaceError, match="must be a list"):
        space.add_texts("hello")
    with pytest.raises(SpaceError, match="integers"):
        space.remove("12")
    with pytest.raises(SpaceError, match="not a string"):
        space.add_texts([None])
    with pytest.raises(SpaceError, match="cannot be stored"):
        space.add_texts(["a"], metadata={"o": object()})
    with pytest.raises(SpaceError, match="empty"):
        space.search(np.zeros((0, 384), np.float32))
    assert space.revision == before
    assert len(space.search(space.vectors[0], k=np.int64(2))) == 2
    cat = int(space.search("cat", k=1)["id"][0])
    assert space.remove(cat) == 1 and cat not in set(space.items["id"])


def test_in_memory_audio_is_stored_inside_the_space(space):
    rate = 16_000
    t = np.arange(rate) / rate
    [item] = space.add_audio([(0.3 * np.sin(2 * np.pi * 440 * t), rate)])
    source = space.source_path(item)
    assert source.is_file() and space.path in source.parents


def test_loud_audio_never_stores_a_non_finite_vector(space, tmp_path):
    import soundfile

    t = np.arange(16_000) / 16_000
    loud = tmp_path / "loud.wav"
    soundfile.write(loud, (1e30 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000, subtype="FLOAT")
    try:
        space.add_audio([loud])
    except SpaceError as error:
        assert "loud.wav" in str(error)
    assert np.isfinite(Space.open(space.path).vectors).all()
    assert len(space.search("a cat", k=3)) == 3


def test_cli_remove_and_check(space):
    env = dict(os.environ)
    ids = [str(item) for item in space.items["id"][:2]]
    done = subprocess.run([EMBEDSPACE, "remove", str(space.path), *ids], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "removed 2 items" in done.stdout
    done = subprocess.run([EMBEDSPACE, "check", str(space.path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "ok" in done.stdout
    (space.path / "manifest.json").write_text("[]")
    done = subprocess.run([EMBEDSPACE, "info", str(space.path)], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "manifest.json" in done.stderr


def test_a_missing_part_is_named_in_the_error(space):
    part = sorted((space.path / "segments").glob("*.parquet"))[0]
    part.unlink()
    with pytest.raises(SpaceError, match=f"{part.name}: is named by the manifest but missing"):
        Space.open(space.path)
