"""Fast tests of the image generator with tiny seeded models (CPU, well under a second each)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from embedspace.generator import (
    GenerationResult,
    Generator,
    Prior,
    PriorConfig,
    TokenizerConfig,
    VQTokenizer,
    arithmetic,
    interpolate,
    random_walk,
    sample,
)
from embedspace.generator.sampling import guide
from embedspace.recipes import shapes
from embedspace.recipes.generator_evaluation import prior_diagnostics, tokenizer_fidelity
from embedspace.recipes.generator_training import TokenizerObjective, inverse_frequency_weights, load_history, train_prior, train_tokenizer
from embedspace.recipes.loop import planned_epochs

D = 16  # condition dimension of the tiny models
ENCODER = "tiny-test-encoder"


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_tokenizer_config(**overrides) -> TokenizerConfig:
    return TokenizerConfig(**{"image_size": 16, "widths": (8, 16, 16), "codebook_size": 32, "code_dim": 8,
                              **overrides})


def tiny_prior_config(**overrides) -> PriorConfig:
    return PriorConfig(**{"vocab_size": 32, "grid_size": 4, "condition_dim": D, "n_prefix": 2, "n_layer": 2,
                          "n_head": 2, "n_embd": 32, **overrides})


def make_tokenizer(seed: int = 0, **overrides) -> VQTokenizer:
    torch.manual_seed(seed)
    return VQTokenizer(tiny_tokenizer_config(**overrides))


def make_prior(seed: int = 0, **overrides) -> Prior:
    torch.manual_seed(seed)
    prior = Prior(tiny_prior_config(**overrides)).eval()
    with torch.no_grad():  # sharpen the untrained distribution so sampling choices matter
        prior.head.weight.mul_(40)
    return prior


def unit_vectors(n: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, D, generator=torch.Generator().manual_seed(seed)), dim=1)


def images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def generator() -> Generator:
    return Generator(make_tokenizer().eval(), make_prior(), ENCODER)


# --- tokenizer ---------------------------------------------------------------------------


def test_tokenizer_encode_decode_shapes():
    tokenizer = make_tokenizer().eval()
    codes = tokenizer.encode(images(3))
    assert codes.shape == (3, 4, 4) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < 32
    decoded = tokenizer.decode(codes)
    assert decoded.shape == (3, 3, 16, 16) and decoded.abs().max() <= 1.0


def test_tokenizer_default_is_4x_downsampling():
    assert TokenizerConfig().grid_size == 8 and TokenizerConfig(image_size=64).grid_size == 16


def test_tokenizer_forward_returns_reconstruction_and_codebook_stats():
    tokenizer = make_tokenizer().train()
    recon, stats = tokenizer(images(4))  # the loss is the trainer's (tests/test_generator_training.py)
    assert recon.shape == (4, 3, 16, 16)
    assert set(stats) == {"commitment", "perplexity", "used_codes"}
    assert stats["commitment"].ndim == 0 and torch.isfinite(stats["commitment"])


def test_tokenizer_kmeans_init_spreads_codes_over_first_batch():
    tokenizer = make_tokenizer().train()
    assert not bool(tokenizer.quantizer.initialized)
    _, losses = tokenizer(images(8), generator=seeded(0))
    assert bool(tokenizer.quantizer.initialized)
    assert losses["used_codes"] >= 16  # 128 vectors over 32 codes
    assert torch.allclose(tokenizer.quantizer.codebook.norm(dim=1), torch.ones(32), atol=1e-5)


def test_tokenizer_restarts_dead_codes():
    tokenizer = make_tokenizer().train()
    tokenizer(images(8), generator=seeded(0))
    quantizer = tokenizer.quantizer
    quantizer.cluster_size[:5] = 0.0
    before = quantizer.codebook[:5].clone()
    tokenizer(images(8, seed=1), generator=seeded(1))
    assert not torch.allclose(quantizer.codebook[:5], before)
    assert (quantizer.cluster_size[:5] > 0).all()


def test_tokenizer_rejects_wrong_image_size():
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        make_tokenizer().encode(images(1, size=32))


def test_tokenizer_config_validates():
    with pytest.raises(ValueError, match="divisible"):
        TokenizerConfig(image_size=30)


def test_codebook_usage_report():
    usage = make_tokenizer().codebook_usage(torch.tensor([[0, 1], [1, 1]]))
    assert usage.used_codes == 2 and usage.codebook_size == 32
    assert 1.0 < usage.perplexity < 2.0


# --- prior -------------------------------------------------------------------------------


def test_prior_logits_shape_and_loss():
    prior = make_prior()
    codes = torch.randint(0, 32, (3, 16))
    logits, loss = prior(codes[:, :-1], unit_vectors(3), targets=codes)
    assert logits.shape == (3, 16, 32) and loss.ndim == 0
    logits, loss = prior(codes[:, :0], None)
    assert logits.shape == (3, 1, 32) and loss is None


def test_prior_rejects_full_sequence_input():
    with pytest.raises(ValueError, match="codes\\[:, :-1\\]"):
        make_prior()(torch.zeros(1, 16, dtype=torch.long), unit_vectors(1))


def test_prior_loss_decreases_on_one_batch():
    prior = make_prior().train()
    codes, condition = torch.randint(0, 32, (8, 16), generator=seeded(0)), unit_vectors(8)
    optimizer = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        _, loss = prior(codes[:, :-1], condition, targets=codes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_prior_kv_cache_matches_full_forward():
    prior = make_prior()
    codes, condition = torch.randint(0, 32, (2, 16), generator=seeded(0)), unit_vectors(2)
    full, _ = prior(codes[:, :-1], condition)  # (2, 16, 32)
    cache = prior.new_cache(2)
    stepped = [prior.prefill(condition, cache)]
    for t in range(15):
        stepped.append(prior.forward_step(codes[:, t], cache))
    assert torch.allclose(torch.stack(stepped, dim=1), full, atol=1e-4)


def test_prior_null_condition_differs_from_condition():
    prior = make_prior()
    codes, condition = torch.randint(0, 32, (2, 5)), unit_vectors(2)
    conditional, _ = prior(codes, condition)
    null, _ = prior(codes, condition, drop_condition=torch.tensor([True, True]))
    null_none, _ = prior(codes, None)
    assert not torch.allclose(conditional, null)
    assert torch.allclose(null[:1], null_none[:1].expand_as(null[:1]), atol=1e-6)


# --- sampling ----------------------------------------------------------------------------


def test_sampling_same_seed_is_deterministic_and_seeds_differ():
    prior, condition = make_prior(), unit_vectors(2)
    a = sample(prior, condition, generator=seeded(0))
    b = sample(prior, condition, generator=seeded(0))
    c = sample(prior, condition, generator=seeded(1))
    assert a.shape == (2, 4, 4) and a.dtype == torch.int64
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampling_does_not_touch_global_rng():
    prior = make_prior()
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    sample(prior, unit_vectors(1), generator=seeded(0))
    assert torch.equal(torch.rand(1), expected)


@pytest.mark.parametrize(
    "options",
    [
        {"guidance": 1.0},
        {"guidance": 3.0},
        {"guidance": 3.0, "top_k": 5},
        {"guidance": 2.0, "top_p": 0.8, "temperature": 0.7},
        {"guidance": 1.0, "top_k": 8, "top_p": 0.9},
        {"guidance": 3.0, "temperature": 0.0},
        {"guidance": 3.0, "plausibility": 0.0},
        {"guidance": 5.0, "plausibility": 0.5, "top_p": 0.9},
    ],
)
def test_kv_cache_sampling_equals_full_recompute(options):
    prior, condition = make_prior(), unit_vectors(3)
    cached = sample(prior, condition, generator=seeded(7), use_cache=True, **options)
    recomputed = sample(prior, condition, generator=seeded(7), use_cache=False, **options)
    assert torch.equal(cached, recomputed)


def test_guidance_mixes_logits_and_keeps_only_plausible_tokens():
    conditional = torch.tensor([[2.0, 1.0, -5.0]])
    null = torch.tensor([[0.0, 1.0, -20.0]])
    plain = guide(conditional, null, 3.0, plausibility=0.0)
    assert torch.allclose(plain, null + 3.0 * (conditional - null))
    assert plain.argmax() == 2  # unguarded guidance boosts a token the condition rules out
    guarded = guide(conditional, null, 3.0, plausibility=0.1)
    assert guarded[0, 2] == float("-inf") and guarded.argmax() == 0
    assert torch.equal(guarded[0, :2], plain[0, :2])


def test_a_composing_prior_gives_missing_points_the_null_prefix_and_samples_sets_of_points():
    single, condition = make_prior(), unit_vectors(3)
    assert torch.equal(sample(single, condition[:, None], generator=seeded(4)), sample(single, condition, generator=seeded(4)))
    with pytest.raises(ValueError, match="2 points per image given; this generator takes 1 "):
        sample(single, unit_vectors(4).view(2, 2, D))
    prior = make_prior(condition_parts=3)
    assert prior.config.prefix_length == 6 and prior.config.block_size == 6 + 16 - 1
    parts = unit_vectors(6, seed=1).view(2, 3, D)
    with torch.no_grad():
        two = prior.prefix(parts[:, :2])
        padded = prior.prefix(torch.cat([parts[:, :2], torch.zeros(2, 1, D)], dim=1))
        nothing = prior.prefix(parts, drop_condition=torch.ones(2, dtype=torch.bool))
    assert torch.equal(two, padded)
    assert torch.equal(two[:, 4:], prior.null_prefix.expand(2, 2, -1))  # the missing third point
    assert torch.equal(nothing, prior.prefix(None, batch_size=2))
    assert not torch.equal(two[:, :4], nothing[:, :4])
    assert torch.equal(sample(prior, parts, generator=seeded(2), use_cache=True),
                       sample(prior, parts, generator=seeded(2), use_cache=False))
    assert not torch.equal(sample(prior, parts, temperature=0.0), sample(prior, parts[:, :1], temperature=0.0))
    with pytest.raises(ValueError, match="4 points per image given; this generator takes 1 to 3"):
        sample(prior, unit_vectors(8).view(2, 4, D))


def test_top_k_one_is_greedy():
    prior, condition = make_prior(), unit_vectors(2)
    assert torch.equal(sample(prior, condition, top_k=1, generator=seeded(0)),
                       sample(prior, condition, temperature=0.0, generator=seeded(5)))


def test_on_token_called_once_per_token():
    calls = []
    sample(make_prior(), unit_vectors(2), on_token=lambda step, tokens: calls.append((step, tuple(tokens.shape))))
    assert calls == [(t, (2, t + 1)) for t in range(16)]


def test_per_row_generators_make_rows_independent_of_batch():
    prior, condition = make_prior(), unit_vectors(3)
    together = sample(prior, condition, generator=[seeded(10), seeded(11), seeded(12)])
    alone = sample(prior, condition[1:2], generator=[seeded(11)])
    assert torch.equal(together[1:2], alone)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.ones(2, D + 1), f"{D}-dimensional"),
        (np.ones((2, 1, D + 1)), f"{D}-dimensional"),
        (np.ones((2, 0, D)), "0 points per image"),
        (torch.full((1, D), float("nan")), "NaN"),
        (torch.cat([unit_vectors(1), torch.full((1, D), float("inf"))]), "rows \\[1\\]"),
        (torch.zeros(D), "all zeros"),
    ],
)
def test_bad_conditions_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        sample(make_prior(), bad)


@pytest.mark.parametrize(
    "options",
    [{"top_p": 0.0}, {"top_k": 0}, {"temperature": -1.0}, {"guidance": float("nan")}, {"plausibility": 1.0}],
)
def test_bad_sampling_options_are_rejected(options):
    with pytest.raises(ValueError):
        sample(make_prior(), unit_vectors(1), **options)


def test_sampling_accepts_one_vector_and_renormalises():
    prior = make_prior()
    v = unit_vectors(1)
    assert torch.equal(sample(prior, v[0] * 3.0, generator=seeded(0)), sample(prior, v, generator=seeded(0)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_on_cuda_matches_recompute():
    prior, condition = make_prior().to("cuda"), unit_vectors(2)
    cached = sample(prior, condition, generator=seeded(0))
    assert cached.device.type == "cuda"
    assert torch.equal(cached, sample(prior, condition, generator=seeded(0), use_cache=False))


# --- pipeline ----------------------------------------------------------------------------


def test_generate_returns_condition_major_result(generator):
    vectors = unit_vectors(3).numpy()
    result = generator.generate(vectors, n=2, seed=0, batch_size=4)
    assert isinstance(result, GenerationResult)
    assert len(result.images) == 6 and all(isinstance(im, Image.Image) and im.size == (16, 16) for im in result.images)
    assert result.conditions.shape == (6, D) and result.conditions.dtype == np.float32
    assert np.allclose(result.conditions[2:4], vectors[1:2], atol=1e-6)
    assert result.tokens.shape == (6, 4, 4) and result.tokens.dtype == np.int64
    assert list(result.seeds) == [0, 1, 2, 3, 4, 5]


def test_generate_does_not_depend_on_batch_size(generator):
    vectors = unit_vectors(2)
    a = generator.generate(vectors, n=3, seed=5, batch_size=1)
    b = generator.generate(vectors, n=3, seed=5, batch_size=16)
    assert np.array_equal(a.tokens, b.tokens)
    one = generator.generate(vectors[1], n=1, seed=int(a.seeds[4]))
    assert np.array_equal(one.tokens[0], a.tokens[4])


def test_per_image_seeds_batch_a_path_like_separate_calls(generator):
    path = interpolate(unit_vectors(1, seed=1)[0], unit_vectors(1, seed=2)[0], 4)
    batched = generator.generate(path, n=1, seeds=[7] * 4, batch_size=4)
    separate = [generator.generate(point, n=1, seed=7).tokens[0] for point in path]
    np.testing.assert_array_equal(batched.tokens, np.stack(separate))
    assert list(batched.seeds) == [7] * 4
    with pytest.raises(ValueError, match="seeds has 3 entries"):
        generator.generate(path, n=1, seeds=[1, 2, 3])


def test_generate_rejects_wrong_dimension_with_expected_dimension(generator):
    with pytest.raises(ValueError, match=f"{D}-dimensional"):
        generator.generate(np.ones(D + 3, dtype=np.float32))


def test_preview_paints_pending_cells_and_matches_final_image(generator):
    seen = []
    result = generator.generate(unit_vectors(1), n=1, on_token=lambda step, tokens: seen.append(tokens.clone()))
    first = np.asarray(generator.preview(seen[0])[0])
    assert first.shape == (16, 16, 3) and (first[4:, :] == 204).all()  # everything but cell 0 pending
    assert np.array_equal(np.asarray(generator.preview(seen[-1])[0]), np.asarray(result.images[0]))
    assert np.asarray(generator.preview(seen[0][:, :0])[0]).max() == 204


def test_save_pretrained_load_round_trip_gives_identical_samples(generator, tmp_path):
    generator.save_pretrained(tmp_path / "gen")
    assert {p.name for p in (tmp_path / "gen").iterdir()} == {"config.json", "tokenizer", "prior"}
    assert (tmp_path / "gen" / "prior" / "model.safetensors").is_file()
    loaded = Generator.load(tmp_path / "gen")
    assert loaded.encoder_model_id == ENCODER
    vectors = unit_vectors(2)
    a = generator.generate(vectors, n=2, seed=3, guidance=2.0, top_k=10)
    b = loaded.generate(vectors, n=2, seed=3, guidance=2.0, top_k=10)
    assert np.array_equal(a.tokens, b.tokens)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images))


def test_save_pretrained_in_float16_halves_weights_and_loads_as_float32(generator, tmp_path):
    generator.save_pretrained(tmp_path / "full")
    generator.save_pretrained(tmp_path / "half", dtype=torch.float16)
    full, half = (tmp_path / d / "prior" / "model.safetensors" for d in ("full", "half"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = Generator.load(tmp_path / "half")
    assert loaded.prior.head.weight.dtype == torch.float32
    assert bool(loaded.tokenizer.quantizer.initialized) == bool(generator.tokenizer.quantizer.initialized)
    assert loaded.generate(unit_vectors(1), n=1).tokens.shape == (1, 4, 4)


def test_load_for_another_encoder_fails_clearly(generator, tmp_path):
    generator.save_pretrained(tmp_path / "gen")
    with pytest.raises(ValueError, match=f"trained for encoder model '{ENCODER}'.*not 'other-model'"):
        Generator.load(tmp_path / "gen", encoder_model_id="other-model")
    generator.check_compatible(ENCODER)
    with pytest.raises(ValueError, match=ENCODER):
        generator.check_compatible("other-model")


def test_load_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="no generator folder or named generator 'no-such-generator'"):
        Generator.load("no-such-generator")


def test_generator_rejects_mismatched_components():
    with pytest.raises(ValueError, match="vocabulary"):
        Generator(make_tokenizer(), make_prior(vocab_size=64), ENCODER)


# --- moves -------------------------------------------------------------------------------


def test_slerp_endpoints_equal_inputs_and_path_stays_unit_norm():
    a, b = unit_vectors(2).numpy()
    path = interpolate(a, b, steps=7)
    assert path.shape == (7, D) and path.dtype == np.float32
    assert np.allclose(path[0], a, atol=1e-6) and np.allclose(path[-1], b, atol=1e-6)
    assert np.allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-5)
    angles = np.arccos(np.clip((path[:-1] * path[1:]).sum(axis=1), -1, 1))
    assert np.allclose(angles, angles[0], atol=1e-4)  # constant angular speed


def test_linear_interpolation_is_renormalised():
    a, b = unit_vectors(2, seed=1).numpy()
    path = interpolate(a, b, steps=5, method="linear")
    assert np.allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="slerp"):
        interpolate(a, b, 3, method="cubic")


def test_slerp_of_opposite_points_is_rejected():
    a = unit_vectors(1).numpy()[0]
    with pytest.raises(ValueError, match="opposite"):
        interpolate(a, -a, 3)


def test_arithmetic_is_renormalised_analogy():
    a, b, c = unit_vectors(3).numpy()
    result = arithmetic(a, b, c)
    expected = (a - b + c) / np.linalg.norm(a - b + c)
    assert result.dtype == np.float32 and np.allclose(result, expected, atol=1e-6)
    with pytest.raises(ValueError, match="dimension"):
        arithmetic(a, b, c[:-1])


def test_random_walk_is_seeded_unit_and_takes_fixed_angles():
    start = unit_vectors(1).numpy()[0]
    walk = random_walk(start, steps=6, step_size=0.2, seed=4)
    assert walk.shape == (6, D) and np.allclose(walk[0], start, atol=1e-6)
    assert np.allclose(np.linalg.norm(walk, axis=1), 1.0, atol=1e-5)
    assert np.allclose((walk[:-1] * walk[1:]).sum(axis=1), np.cos(0.2), atol=1e-5)
    assert np.array_equal(walk, random_walk(start, 6, 0.2, seed=4))
    assert not np.array_equal(walk, random_walk(start, 6, 0.2, seed=5))


# --- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_analyser_is_correct_on_clean_renders(size):
    dataset = shapes.make_dataset(image_size=size)
    assert dataset.images.shape == (216, size, size, 3) and dataset.images.dtype == np.uint8
    assert shapes.accuracy(list(dataset.images), dataset.labels)["all"] == 1.0


def test_shapes_captions_and_empty_image():
    assert shapes.caption("red", "circle", "top left") == "red circle at the top left"
    assert shapes.caption("blue", "cross", "center") == "blue cross in the center"
    assert shapes.attribute_captions("red", "circle", "top left") == ("red shape", "circle", "shape at the top left")
    assert shapes.analyse(Image.new("RGB", (32, 32), "white")) == shapes.ShapeReading(None, None, None)


def test_shapes_jittered_variants_are_deterministic():
    a = shapes.make_dataset(variants=2, seed=1)
    b = shapes.make_dataset(variants=2, seed=1)
    assert len(a.captions) == 432 and np.array_equal(a.images, b.images)


# --- training ----------------------------------------------------------------------------


def test_train_tokenizer_checkpoints_and_resumes(tmp_path):
    data = shapes.make_dataset(image_size=16).images[:32]
    config = tiny_tokenizer_config()
    first = train_tokenizer(data, config, epochs=1, batch_size=16, seed=0, checkpoint_dir=tmp_path, progress=False)
    assert len(load_history(tmp_path)) == 1 and not first.training
    resumed = train_tokenizer(data, config, epochs=2, batch_size=16, seed=0, checkpoint_dir=tmp_path, resume=True,
                              progress=False)
    assert len(load_history(tmp_path)) == 2
    assert resumed.encode(images(2)).shape == (2, 4, 4)
    again = train_tokenizer(data, config, epochs=1, batch_size=16, seed=0, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(first.state_dict().values(), again.state_dict().values()))


def test_train_tokenizer_with_gan_term_runs():
    data = shapes.make_dataset(image_size=16).images[:16]
    model = train_tokenizer(data, tiny_tokenizer_config(), epochs=1, batch_size=8, progress=False,
                            objective=TokenizerObjective(gan_weight=0.1, discriminator_width=8))
    assert model.encode(images(1)).shape == (1, 4, 4)


def test_train_prior_mixes_conditions_and_resumes(tmp_path):
    codes = np.random.default_rng(0).integers(0, 32, size=(24, 4, 4))
    image_conditions, text_conditions = unit_vectors(24, 0).numpy(), unit_vectors(24, 1).numpy()
    text_conditions[:4] = np.nan  # no caption: falls back to the image embedding
    config = tiny_prior_config()
    prior = train_prior(codes, image_conditions, text_conditions, config, epochs=2, batch_size=8,
                        balance_weights=np.linspace(1, 2, 24), checkpoint_dir=tmp_path, progress=False)
    history = load_history(tmp_path, "prior")
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    resumed = train_prior(codes, image_conditions, text_conditions, config, epochs=3, batch_size=8,
                          balance_weights=np.linspace(1, 2, 24), checkpoint_dir=tmp_path, resume=True, progress=False)
    assert len(load_history(tmp_path, "prior")) == 3 and not resumed.training
    with pytest.raises(ValueError, match="same config"):
        train_prior(codes, image_conditions, None, tiny_prior_config(n_layer=1), epochs=3, batch_size=8,
                    checkpoint_dir=tmp_path, resume=True, progress=False)
    assert prior.config == config


def test_prior_trains_with_spoken_captions_and_checks_them():
    codes = np.random.default_rng(0).integers(0, 32, size=(16, 4, 4))
    image_conditions, audio_conditions = unit_vectors(16, 0).numpy(), unit_vectors(16, 2).numpy()
    audio_conditions[:3] = np.nan  # no clip for these: they keep the image condition
    prior = train_prior(codes, image_conditions, None, tiny_prior_config(), epochs=1, batch_size=8, progress=False,
                        audio_conditions=audio_conditions, audio_probability=0.5)
    assert prior.config.condition_dim == D
    with pytest.raises(ValueError, match="audio_conditions"):
        train_prior(codes, image_conditions, None, tiny_prior_config(), epochs=1, progress=False,
                    audio_conditions=audio_conditions[:4])
    with pytest.raises(ValueError, match="audio_probability"):
        train_prior(codes, image_conditions, None, tiny_prior_config(), epochs=1, progress=False,
                    audio_conditions=audio_conditions, audio_probability=1.5)


def test_prior_trains_with_part_conditions_and_checks_them():
    codes = np.random.default_rng(0).integers(0, 32, size=(16, 4, 4))
    image_conditions = unit_vectors(16, 0).numpy()
    parts = unit_vectors(48, 3).numpy().reshape(16, 3, D)
    parts[:2, 1:] = np.nan  # these rows name only one part
    prior = train_prior(codes, image_conditions, None, tiny_prior_config(condition_parts=3), epochs=1, batch_size=8,
                        progress=False, part_conditions=parts, part_probability=0.5)
    assert prior.config.condition_parts == 3
    with pytest.raises(ValueError, match="part_conditions hold 3 parts per image; the prior takes 1"):
        train_prior(codes, image_conditions, None, tiny_prior_config(), epochs=1, progress=False, part_conditions=parts)
    with pytest.raises(ValueError, match="part_conditions must be"):
        train_prior(codes, image_conditions, None, tiny_prior_config(condition_parts=3), epochs=1, progress=False,
                    part_conditions=parts[:, :, :4])
    with pytest.raises(ValueError, match="part_keep"):
        train_prior(codes, image_conditions, None, tiny_prior_config(condition_parts=3), epochs=1, progress=False,
                    part_conditions=parts, part_keep=1.5)


def test_prior_trains_on_corrupted_inputs_and_checks_the_fraction(tmp_path):
    codes = np.random.default_rng(0).integers(0, 32, size=(16, 4, 4))
    conditions = unit_vectors(16, 0).numpy()
    runs = [train_prior(codes, conditions, None, tiny_prior_config(), epochs=1, batch_size=8, progress=False,
                        token_noise=noise, checkpoint_dir=tmp_path / str(noise)) for noise in (0.0, 0.5)]
    plain, noisy = (load_history(tmp_path / str(noise), "prior")[0]["loss"] for noise in (0.0, 0.5))
    assert all(np.isfinite([plain, noisy])) and plain != noisy  # same seed and data: only the inputs differ
    assert runs[1].config == runs[0].config
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="token_noise"):
            train_prior(codes, conditions, None, tiny_prior_config(), epochs=1, progress=False, token_noise=bad)


def test_time_budget_cuts_epochs(tmp_path):
    codes = np.random.default_rng(0).integers(0, 32, size=(16, 4, 4))
    train_prior(codes, unit_vectors(16).numpy(), None, tiny_prior_config(), epochs=50, batch_size=8,
                checkpoint_dir=tmp_path, progress=False, time_budget_s=0.0)
    assert len(load_history(tmp_path, "prior")) == 1  # the pace is known only after one epoch


def test_planned_epochs_follow_the_pace():
    started = time.perf_counter() - 10.0  # 2 epochs took 10 s: 5 s each
    assert planned_epochs(100, 0, 2, started, 31.0) == 6
    assert planned_epochs(4, 0, 2, started, 1000.0) == 4
    assert planned_epochs(100, 0, 2, started, None) == 100


def test_inverse_frequency_weights_balance_groups():
    weights = inverse_frequency_weights(["person", "person", "person", "apple"])
    assert np.allclose(weights, [1 / 3, 1 / 3, 1 / 3, 1.0])


def test_train_prior_rejects_mismatched_data():
    with pytest.raises(ValueError, match="does not fit"):
        train_prior(np.zeros((4, 4, 4), dtype=np.int64), unit_vectors(4).numpy(), config=tiny_prior_config(grid_size=8),
                    epochs=1, progress=False)


# --- evaluation --------------------------------------------------------------------------


def test_tokenizer_fidelity_and_prior_diagnostics_report_shapes():
    data = shapes.make_dataset(image_size=16).images[:8]

    def embed(batch: np.ndarray) -> np.ndarray:  # mean colour as a stand-in image tower
        v = batch.reshape(len(batch), -1, 3).mean(axis=1) - 127.5
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    fidelity = tokenizer_fidelity(make_tokenizer().eval(), data, embed, caption_vectors=embed(data), k=1)
    assert 0 <= fidelity.pixel_l1 <= 1 and -1 <= fidelity.embedding_cosine <= 1
    assert fidelity.recall_originals == 1.0 and fidelity.usage.codebook_size == 32
    diagnostics = prior_diagnostics(make_prior(), np.zeros((3, 4, 4), dtype=np.int64), unit_vectors(3).numpy())
    assert diagnostics.loss_per_position.shape == (4, 4) and diagnostics.predicted_codes.shape == (3, 4, 4)
