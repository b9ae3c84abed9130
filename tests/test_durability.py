"""A process killed with SIGKILL in the middle of large adds leaves every acknowledged item readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from embedspace import Space

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from embedspace import Space

    space = Space.open(sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[2]))
    for batch in range(10_000):
        vectors = rng.normal(size=(2_000, 384)).astype(np.float32)
        ids = space.add_vectors(vectors, [f"b{batch}-{i}" for i in range(len(vectors))])
        print(ids[0], ids[-1], flush=True)  # acknowledged: add_vectors returned
    """
)


def test_sigkill_during_large_adds_keeps_every_acknowledged_item(tmp_path, model):
    space = Space.create(tmp_path / "space", model=model)
    space.add_texts(["before the crash"])
    for seed, delay in enumerate((1.5, 2.7)):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(space.path), str(seed)], stdout=subprocess.PIPE, text=True)
        acknowledged: list[tuple[int, int]] = []
        deadline = time.monotonic() + 120
        while len(acknowledged) < 3 and time.monotonic() < deadline:  # wait for a few acknowledged writes
            line = writer.stdout.readline()
            if line:
                acknowledged.append(tuple(map(int, line.split())))
        time.sleep(delay * 0.1)
        os.kill(writer.pid, signal.SIGKILL)
        acknowledged += [tuple(map(int, line.split())) for line in writer.stdout.read().splitlines() if line.strip()]
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        assert len(acknowledged) >= 3

        reopened = Space.open(space.path, model=model)
        ids = set(reopened.items["id"].tolist())
        for first, last in acknowledged:
            assert set(range(first, last + 1)) <= ids
        assert len(reopened.vectors) == len(reopened.items)
        assert np.isfinite(reopened.vectors).all()
        assert reopened.search("before the crash", k=1)["label"].item() == "before the crash"
    # the space still takes writes after two crashes, and ids keep increasing
    [new_id] = reopened.add_texts(["after the crash"])
    assert new_id > max(last for _, last in acknowledged)
