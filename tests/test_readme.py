"""The README quickstarts run as written (the folders they mention are made with real media)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import write_image, write_tone
from embedspace import Space

README = Path(__file__).resolve().parents[1] / "README.md"


def block(marker: str, language: str) -> str:
    match = re.search(rf"<!-- {marker}[^>]*-->\s*```{language}\n(.*?)```", README.read_text(), re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


def prepare(folder: Path) -> None:
    (folder / "photos").mkdir()
    (folder / "sounds").mkdir()
    write_image(folder / "photos" / "cat.png", (240, 160, 20))
    write_image(folder / "photos" / "car.png", (200, 20, 20), "square")
    write_tone(folder / "sounds" / "meow.wav", 600.0)


def test_cli_quickstart_runs(tmp_path):
    prepare(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block("quickstart-cli", "bash")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "a sleeping cat" in result.stdout and '"items": 5' in result.stdout
    assert sorted(path.name for path in (tmp_path / "generated").iterdir()) == ["000.png", "001.png", "002.png", "003.png"]


def test_python_quickstart_runs(tmp_path, monkeypatch, capsys):
    prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(block("quickstart-python", "python"), "README quickstart", "exec"), {})
    output = capsys.readouterr().out
    assert "kitten" in output and "emoji-mini" in output
    generated = Space.open(tmp_path / "py-space").items
    assert int(generated["generated"].fillna(False).astype(bool).sum()) == 2


def test_large_spaces_commands_run(tmp_path):
    prepare(tmp_path)
    words = ["cat", "dog", "car", "tree", "moon", "sun", "rain", "fish", "heart", "music"]
    rows = [f"a {words[i % 10]} and a {words[(i * 7) % 10]}, number {i}" for i in range(400)]
    (tmp_path / "notes.csv").write_text("text,topic\n" + "".join(f"{row},{row.split()[1]}\n" for row in rows[:300]))
    (tmp_path / "more.csv").write_text("text\n" + "".join(f"{row}\n" for row in rows[300:]))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", RAY_DISABLE_DOCKER_CPU_WARNING="1")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block("large-spaces", "bash")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ingested 302 items" in result.stdout and "ingested 100 items" in result.stdout
    assert "recall@10 against exact search" in result.stdout and "fitted on 200" in result.stdout
    space = Space.open(tmp_path / "big-space")
    assert len(space) == 402 and space.info()["search"].startswith("approximate (IVF")
    assert len(space.store.read_manifest()["segments"]) == 1
