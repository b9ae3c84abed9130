"""Shared fixtures: the default model loaded once, small real media files written per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image, ImageDraw

from embedspace import EmbeddingModel, Space


@pytest.fixture(scope="session")
def model() -> EmbeddingModel:
    return EmbeddingModel.load("emoji-mini")


def write_image(path: Path, colour: tuple[int, int, int], shape: str = "circle", size: int = 64) -> Path:
    """A real PNG: a coloured shape on white."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (size // 8, size // 8, size - size // 8, size - size // 8)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    image.save(path)
    return path


def write_tone(path: Path, frequency: float, seconds: float = 1.0, rate: int = 22_050) -> Path:
    """A real WAV: a sine tone with a short fade."""
    t = np.arange(int(seconds * rate)) / rate
    samples = 0.3 * np.sin(2 * np.pi * frequency * t) * np.minimum(1.0, np.minimum(t, t[::-1]) * 20)
    soundfile.write(path, samples.astype(np.float32), rate, subtype="PCM_16")
    return path


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "media"
    folder.mkdir()
    return {
        "red": write_image(folder / "red.png", (220, 30, 30)),
        "blue": write_image(folder / "blue.png", (30, 30, 220), "square"),
        "low": write_tone(folder / "low.wav", 220.0),
        "high": write_tone(folder / "high.wav", 880.0, rate=16_000),
    }


@pytest.fixture
def space(tmp_path: Path, model: EmbeddingModel, media: dict[str, Path]) -> Space:
    space = Space.create(tmp_path / "space", model=model)
    space.add_texts(["kitten", "cat", "dog", "puppy", "ocean", "fish", "car", "truck"], metadata={"group": "words"})
    space.add_images([media["red"], media["blue"]])
    space.add_audio([media["low"], media["high"]])
    return space


def build_tiny_generator(encoder_model_id: str, condition_dim: int):
    """A tiny random-weight generator (32 px images, an 8×8 grid of 64 codes): its images are noise, its flow is real."""
    import torch

    from embedspace.generator import Generator, Prior, PriorConfig, TokenizerConfig, VQTokenizer

    torch.manual_seed(0)
    tokenizer = VQTokenizer(TokenizerConfig(image_size=32, widths=(16, 32, 32), codebook_size=64, code_dim=8))
    prior = Prior(PriorConfig(vocab_size=64, grid_size=8, condition_dim=condition_dim, n_prefix=2, n_layer=2, n_head=2, n_embd=64))
    return Generator(tokenizer, prior, encoder_model_id)


@pytest.fixture(scope="session")
def tiny_generator_path(tmp_path_factory: pytest.TempPathFactory, model: EmbeddingModel) -> Path:
    """A folder holding :func:`build_tiny_generator` for the default model, saved once per test session."""
    folder = tmp_path_factory.mktemp("tiny-generator") / "generator"
    build_tiny_generator(model.model_id, model.embed_dim).save_pretrained(folder)
    return folder


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (small models are faster so, and the 2-core machine stays usable)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_emoji_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 emoji (30% held out) with their spoken captions, built by the project's own builders."""
    from embedspace.recipes import build_emoji_dataset, build_speech_dataset

    folder = tmp_path_factory.mktemp("emoji")
    build_emoji_dataset(folder, limit=60, heldout_fraction=0.3, progress=False)
    build_speech_dataset(folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def chromium():
    """One headless Debian Chromium for every browser test (skipped when it cannot be installed)."""
    import browser

    if browser.ensure_chromium() is None:
        pytest.skip("Chromium is not installed and could not be installed (run tests/install_browser.sh as root)")
    with browser.chromium() as instance:
        yield instance


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with 2 CPUs and a small object store (the Ray engine joins it), for the tests that ask for it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024**2, log_to_driver=False)
    yield ray
    ray.shutdown()
