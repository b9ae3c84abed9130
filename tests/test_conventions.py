"""Shared conventions: configs refuse unknown keys, presets are data, every component saves and loads the same way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedspace import EmbeddingModel
from embedspace.generator import Generator, Prior, PriorConfig, TokenizerConfig, VQTokenizer, list_pretrained
from embedspace.generator.tokenizer import LEGACY_TRAINING_KEYS
from embedspace.recipes import presets
from embedspace.recipes.encoder_training import PRESETS, EncoderTrainingConfig
from embedspace.recipes.generator_data import RECIPES, Recipe
from embedspace.recipes.generator_training import TokenizerObjective

TOKENIZER = TokenizerConfig(image_size=16, widths=(8, 16, 16), codebook_size=32, code_dim=8)
PRIOR = PriorConfig(vocab_size=32, grid_size=4, condition_dim=16, n_prefix=2, n_layer=2, n_head=2, n_embd=32)


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


# -- configs that reject unknown keys ---------------------------------------------------------------


def test_a_misspelt_component_config_key_is_an_error_naming_it_and_the_file(tmp_path):
    torch.manual_seed(0)
    Prior(PRIOR).save_pretrained(tmp_path / "prior")
    VQTokenizer(TOKENIZER).save_pretrained(tmp_path / "tokenizer")
    edit_config(tmp_path / "prior", n_layers=3)  # n_layer, misspelt: once silently dropped
    with pytest.raises(ValueError, match=r"prior/config.json: unknown prior config key 'n_layers'; allowed: .*n_layer"):
        Prior.from_pretrained(tmp_path / "prior")
    edit_config(tmp_path / "tokenizer", codebook=64)
    with pytest.raises(ValueError, match=r"tokenizer/config.json: unknown tokenizer config key 'codebook'"):
        VQTokenizer.from_pretrained(tmp_path / "tokenizer")


def test_a_config_value_of_the_wrong_type_is_an_error_naming_the_key(tmp_path):
    torch.manual_seed(0)
    Prior(PRIOR).save_pretrained(tmp_path / "prior")
    edit_config(tmp_path / "prior", n_layer="2")
    with pytest.raises(ValueError, match=r"config.json: prior config 'n_layer' must be an int, got str '2'"):
        Prior.from_pretrained(tmp_path / "prior")
    with pytest.raises(ValueError, match="tokenizer config 'widths' must be a list of ints"):
        TokenizerConfig.from_dict({"widths": [8, "16"]})
    with pytest.raises(ValueError, match="prior config must be a JSON object"):
        PriorConfig.from_dict([1, 2])


def test_configs_round_trip_through_json():
    assert TokenizerConfig.from_dict(json.loads(json.dumps(TOKENIZER.to_dict()))) == TOKENIZER
    assert PriorConfig.from_dict(json.loads(json.dumps(PRIOR.to_dict()))) == PRIOR


def test_tokenizer_folders_saved_with_the_old_loss_keys_still_load(tmp_path):
    torch.manual_seed(0)
    VQTokenizer(TOKENIZER).save_pretrained(tmp_path / "tokenizer")
    edit_config(tmp_path / "tokenizer", reconstruction_loss="mse", commitment_weight=0.25, perceptual_weight=0.5,
                gan_weight=0.0, gan_start_step=0, discriminator_width=64)  # what earlier versions wrote
    assert VQTokenizer.from_pretrained(tmp_path / "tokenizer").config == TOKENIZER


def test_shipped_generators_load_and_their_configs_hold_no_training_settings():
    root = Path(__file__).resolve().parent.parent / "embedspace" / "generator" / "pretrained"
    assert set(list_pretrained()) >= {"emoji-mini", "shapes"}
    for name in list_pretrained():
        tokenizer_keys = set(json.loads((root / name / "tokenizer" / "config.json").read_text()))
        assert not tokenizer_keys & LEGACY_TRAINING_KEYS, name
        generator = Generator.load(name)
        assert generator.tokenizer.config.image_size == generator.image_size == 32


# -- presets as data --------------------------------------------------------------------------------


def test_presets_are_json_files_read_into_typed_configs():
    assert presets.preset_names("encoder") == ["cpu", "gpu"] and set(PRESETS) == {"cpu", "gpu"}
    assert PRESETS["cpu"] == EncoderTrainingConfig()  # the shipped weights were trained with the defaults
    assert PRESETS["gpu"].batch_size == 512 and PRESETS["gpu"].heldout_styles == ("heldout",)
    assert presets.preset_names("generator") == ["emoji", "shapes"] == sorted(RECIPES)
    emoji = RECIPES["emoji"]
    assert isinstance(emoji.tokenizer, TokenizerConfig) and emoji.tokenizer.widths == (32, 64, 128)
    assert emoji.tokenizer_objective == TokenizerObjective() and emoji.audio_probability == 0.2
    shipped = Generator.load("shapes")  # the shipped generators were made with these recipes
    assert shipped.tokenizer.config == RECIPES["shapes"].tokenizer
    assert shipped.prior.config == RECIPES["shapes"].prior_config(shipped.condition_dim)


def test_a_preset_with_an_unknown_key_is_an_error_naming_the_file(tmp_path):
    folder = tmp_path / "generator"
    folder.mkdir()
    recipe = json.loads((presets.PRESETS_DIR / "generator" / "shapes.json").read_text())
    recipe["config"]["prior_epoch"] = 3
    (folder / "typo.json").write_text(json.dumps(recipe))
    with pytest.raises(ValueError, match=r"typo.json: unknown generator recipe key 'prior_epoch'"):
        presets.read_preset("generator", "typo", Recipe.from_dict, root=tmp_path)
    with pytest.raises(ValueError, match="no generator preset 'missing'; there are: typo"):
        presets.read_preset("generator", "missing", Recipe.from_dict, root=tmp_path)
    with pytest.raises(ValueError, match="unknown encoder training config key 'epochs'"):
        EncoderTrainingConfig.from_dict({"epochs": 3})


# -- one save_pretrained / from_pretrained --------------------------------------------------------


def test_every_component_answers_save_pretrained_and_from_pretrained(tmp_path, model):
    torch.manual_seed(0)
    tokenizer, prior = VQTokenizer(TOKENIZER).eval(), Prior(PRIOR).eval()
    generator = Generator(tokenizer, prior, "tiny")
    for name, component in {"tokenizer": tokenizer, "prior": prior, "generator": generator, "model": model}.items():
        component.save_pretrained(tmp_path / name)
        loaded = type(component).from_pretrained(tmp_path / name)
        assert type(loaded) is type(component), name
    codes = torch.zeros(1, 4, 4, dtype=torch.long)
    assert torch.equal(VQTokenizer.from_pretrained(tmp_path / "tokenizer").decode(codes), tokenizer.decode(codes))
    assert Generator.from_pretrained(tmp_path / "generator").encoder_model_id == "tiny"
    reloaded = EmbeddingModel.from_pretrained(tmp_path / "model")
    np.testing.assert_allclose(reloaded.embed_text(["a red circle"]), model.embed_text(["a red circle"]), atol=1e-6)
    assert EmbeddingModel.from_pretrained("emoji-mini").fingerprint == EmbeddingModel.load("emoji-mini").fingerprint
