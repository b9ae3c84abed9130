"""Ingest: tables, folders and files into a space in blocks, locally and on a real local Ray (2 CPUs).

The fault tests kill real processes: a Ray actor mid-ingest, and the driver (SIGKILL) of a
CLI ingest after its first commit. Afterwards every input row is in the space exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedspace import Space
from embedspace.cli import main as cli_main
from embedspace.errors import SpaceError
from embedspace.ingest import discover
from tests.conftest import write_image, write_tone

ray = pytest.importorskip("ray")

WORDS = ["kitten", "cat", "dog", "puppy", "ocean", "fish", "car", "truck", "apple", "pear", "sun", "moon", "rain", "snow"]


def write_inputs(folder: Path, texts: int = 40) -> tuple[Path, Path]:
    """A CSV of ``texts`` texts with a label and two metadata columns, and a folder of 3 images and 2 sounds."""
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "notes.csv"
    pd.DataFrame({
        "text": [f"a {WORDS[i % len(WORDS)]} number {i}" for i in range(texts)],
        "label": [f"note {i}" for i in range(texts)],
        "topic": [WORDS[i % len(WORDS)] for i in range(texts)],
        "rank": list(range(texts)),
    }).to_csv(table, index=False)
    media = folder / "media"
    media.mkdir(exist_ok=True)
    write_image(media / "red.png", (220, 30, 30))
    write_image(media / "blue.png", (30, 30, 220), "square")
    write_image(media / "green.png", (30, 200, 30))
    write_tone(media / "low.wav", 220.0)
    write_tone(media / "high.wav", 880.0, rate=16_000)
    return table, media


def stored(space: Space) -> pd.DataFrame:
    return space.items.sort_values("id").reset_index(drop=True)


def test_discover_reads_tables_folders_and_files_in_order(tmp_path):
    table, media = write_inputs(tmp_path, texts=3)
    rows, errors = discover([table, media, media / "red.png"])
    assert errors == []
    assert [row.modality for row in rows] == ["text"] * 3 + ["image", "image", "audio", "audio", "image"] + ["image"]
    assert rows[0].label == "note 0" and rows[0].metadata == {"topic": "kitten", "rank": 0}
    assert [Path(row.value).name for row in rows[3:]] == ["blue.png", "green.png", "high.wav", "low.wav", "red.png", "red.png"]


def test_local_ingest_adds_every_row_with_its_label_and_metadata(tmp_path, model):
    table, media = write_inputs(tmp_path / "in")
    space = Space.create(tmp_path / "space", model=model)
    result = space.ingest([table, media])
    items = stored(space)
    assert result.added == len(items) == 45 and result.skipped == ()
    assert items["modality"].value_counts().to_dict() == {"text": 40, "image": 3, "audio": 2}
    note = items[items["label"] == "note 7"].iloc[0]
    assert note["topic"] == "truck" and note["rank"] == 7
    # an ingested text is the same vector as an added one
    np.testing.assert_allclose(space.vectors_of([int(note["id"])])[0], model.embed_text(["a truck number 7"])[0], atol=1e-5)
    assert space.search("a truck number 7", k=1, modality="text")["label"].iloc[0] == "note 7"
    assert space.thumbnail_path(int(items[items["modality"] == "image"]["id"].iloc[0])) is not None


def test_a_rerun_of_a_finished_ingest_adds_nothing_twice(tmp_path, model):
    table, _ = write_inputs(tmp_path / "in", texts=10)
    space = Space.create(tmp_path / "space", model=model)
    space.ingest(table)
    again = space.ingest(table)
    assert again.added == 0 and again.resumed_blocks == again.blocks == 1
    assert len(space) == 10


def test_bad_inputs_are_named_in_one_error_and_nothing_is_written(tmp_path, model):
    table, media = write_inputs(tmp_path / "in", texts=5)
    (media / "broken.png").write_bytes(b"not a png at all")
    pd.DataFrame({"text": ["fine", ""], "other": [1, 2]}).to_csv(tmp_path / "in" / "gaps.csv", index=False)
    space = Space.create(tmp_path / "space", model=model)
    revision = space.revision
    with pytest.raises(SpaceError) as caught:
        space.ingest([table, media, tmp_path / "missing.csv", tmp_path / "in" / "gaps.csv"])
    message = str(caught.value)
    assert "broken.png" in message and "missing.csv: no such file" in message and "gaps.csv row 2" in message
    assert "nothing was added" in message
    assert Space.open(space.path).revision == revision and len(Space.open(space.path)) == 0

    result = space.ingest([table, media, tmp_path / "in" / "gaps.csv"], on_error="skip")
    assert len(space) == 5 + 5 + 1  # texts, media without broken.png, the one good row of gaps.csv
    assert len(result.skipped) == 2 and any("broken.png" in line for line in result.skipped)


def test_ray_ingest_gives_the_local_engine_s_ids_labels_and_vectors(tmp_path, model, local_ray):
    table, media = write_inputs(tmp_path / "in")
    local = Space.create(tmp_path / "local", model=model)
    local.ingest([table, media])
    on_ray = Space.create(tmp_path / "ray", model=model)
    from embedspace.ingest import ingest

    result = ingest(on_ray, [table, media], engine="ray", workers=2, block_rows=8)
    assert result.blocks == 6 and result.added == 45
    left, right = stored(local), stored(on_ray)
    pd.testing.assert_frame_equal(left.drop(columns=["source"]), right.drop(columns=["source"]))
    np.testing.assert_allclose(local.vectors_of(left["id"]), on_ray.vectors_of(right["id"]), atol=1e-5)


def _actor_pids() -> list[int]:
    """PIDs of this machine's Ray processes running an ingest block encoder (Ray Data names them after the class)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if command.startswith("ray::") and "BlockEncoder" in command:
                found.append(int(entry.name))
    return found


def test_killing_a_ray_worker_mid_ingest_loses_and_duplicates_nothing(tmp_path, model, local_ray):
    table, _ = write_inputs(tmp_path / "in", texts=240)
    space = Space.create(tmp_path / "space", model=model)
    from embedspace.ingest import ingest

    killed: list[int] = []

    def kill_one_encoder() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            manifest = space.store.read_manifest()
            started = any(record["done"] for record in manifest.get("ingests", {}).values())
            pids = _actor_pids()
            if started and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_encoder)
    killer.start()
    result = ingest(space, table, engine="ray", workers=2, block_rows=4)
    killer.join()
    assert killed, "no encoder actor was found to kill"
    items = stored(space)
    assert result.blocks == 60 and len(items) == 240
    assert items["id"].is_unique and sorted(items["label"]) == sorted(f"note {i}" for i in range(240))
    manifest = space.store.read_manifest()
    assert all(record["finished"] for record in manifest["ingests"].values())


def test_sigkill_of_the_driver_leaves_the_last_commit_and_a_rerun_finishes(tmp_path, model):
    table, _ = write_inputs(tmp_path / "in", texts=600)
    space_path = tmp_path / "space"
    Space.create(space_path, model=model)
    command = [sys.executable, "-m", "embedspace.cli", "ingest", str(space_path), str(table)]
    env = dict(os.environ, EMBEDSPACE_INGEST_BLOCK_ROWS="8")
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and driver.poll() is None and not committed:
        ingests = Space.open(space_path).store.read_manifest().get("ingests", {})
        committed = sum(len(record["done"]) for record in ingests.values())
        time.sleep(0.02)
    assert driver.poll() is None, f"the ingest ended before it could be killed: {driver.stderr.read().decode()[-500:]}"
    driver.send_signal(signal.SIGKILL)
    driver.wait()

    interrupted = Space.open(space_path)
    record = next(iter(interrupted.store.read_manifest()["ingests"].values()))
    assert not record["finished"] and 0 < len(interrupted) < 600
    assert len(interrupted) == 8 * len(record["done"])  # exactly the committed blocks, nothing half-written

    assert subprocess.run(command, env=env, capture_output=True, text=True).returncode == 0
    space = Space.open(space_path)
    items = stored(space)
    assert len(items) == 600 and items["label"].is_unique and items["id"].is_unique
    assert next(iter(space.store.read_manifest()["ingests"].values()))["finished"]


def test_cli_ingest_with_skip_bad_lists_what_it_skipped(tmp_path, model, capsys):
    table, media = write_inputs(tmp_path / "in", texts=4)
    space_path = tmp_path / "space"
    Space.create(space_path, model=model)
    cli_main(["ingest", str(space_path), str(table), str(tmp_path / "nope"), "--skip-bad"])
    out = capsys.readouterr().out
    assert "ingested 4 items" in out and "skipped:" in out and "nope" in out


def test_an_unreachable_address_is_one_line_before_anything_is_written(tmp_path, model):
    table, _ = write_inputs(tmp_path / "in", texts=4)
    space = Space.create(tmp_path / "space", model=model)
    revision = space.revision
    with pytest.raises(SpaceError) as caught:
        space.ingest(table, engine="ray", address="127.0.0.1:9")
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in str(caught.value) and "\n" not in str(caught.value)
    assert Space.open(space.path).revision == revision
    with pytest.raises(SpaceError, match="engine must be one of"):
        space.ingest(table, engine="spark")
