"""The command line: each subcommand end to end in a subprocess; user errors are one line, no traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from embedspace.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str, check: bool = True) -> Result:
    """Run the CLI in this process (the same ``main`` the console script calls)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(list(args))
    result = Result(code, stdout.getvalue(), stderr.getvalue())
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_console_script_runs_as_a_separate_process(tmp_path):
    script = Path(sys.executable).parent / "embedspace"
    listing = subprocess.run([str(script), "models"], capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0 and "emoji-mini" in listing.stdout
    missing = subprocess.run([str(script), "info", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr


def test_create_add_search_info(tmp_path, media):
    space = str(tmp_path / "space")
    assert "created" in run("create", space).stdout
    added = run("add", space, str(media["red"].parent), "--text", "kitten", "--text", "cat", "--text", "car")
    assert "added 7 items" in added.stdout  # 2 images + 2 audio files from the folder, 3 texts
    found = json.loads(run("search", space, "kitten", "-k", "2", "--modality", "text", "--json").stdout)
    assert [row["label"] for row in found] == ["kitten", "cat"]
    assert {"id", "modality", "label", "score", "source"} <= set(found[0])
    by_image = run("search", space, str(media["red"]), "-k", "1").stdout
    assert "red" in by_image
    info = json.loads(run("info", space).stdout)
    assert info["items"] == 7 and info["by_modality"] == {"text": 3, "image": 2, "audio": 2}


def test_project_stores_maps_of_a_space(space):
    output = run("project", str(space.path), "--dims", "2").stdout
    assert f"2-d map of {len(space)} items" in output
    assert (space.path / "projections").is_dir()


def test_models_lists_the_registry():
    listing = run("models").stdout
    assert "emoji-mini" in listing and "384-d" in listing


@pytest.mark.parametrize(
    "args, message",
    [
        (("search", "{tmp}/missing", "cat"), "does not exist"),
        (("create", "{tmp}/new", "--model", "nope"), "unknown model"),
        (("search", "{space}", ""), "empty"),
        (("search", "{space}", "{tmp}/ghost.png"), "no such file"),
        (("add", "{space}", "{tmp}/empty.wav"), "empty.wav"),
        (("add", "{space}", "--text", " "), "empty"),
    ],
)
def test_user_errors_are_one_line_with_nonzero_exit(tmp_path, args, message):
    space = tmp_path / "space"
    run("create", str(space))
    (tmp_path / "empty.wav").write_bytes(b"")
    before = (space / "manifest.json").read_text()
    result = run(*(arg.format(tmp=tmp_path, space=space) for arg in args), check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr and result.stderr.startswith("embedspace: error:")
    assert (space / "manifest.json").read_text() == before
