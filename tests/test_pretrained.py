"""The shipped emoji-mini weights: offline loading, determinism, and held-out queries landing where expected.

The emoji used here come from the held-out split (their base emoji never appeared in
training); images are rendered from the OpenMoji package and speech is synthesised with
espeak-ng, both at test time.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from embedspace.recipes.speech import SpeechSynthesizer
from embedspace.recipes.emoji import default_svg_dir, render_svg, split_for_base

HELD_OUT = {  # key -> a query a user would type
    "1F339": "rose",
    "1F349": "watermelon",
    "1F34B": "lemon",
    "1F3B8": "guitar",
    "1F413": "rooster",
    "1F430": "rabbit",
    "1F455": "t-shirt",
    "1F3AE": "video game",
    "1F385": "Santa Claus",
    "1F4B4": "yen banknote",
}


@pytest.fixture(scope="module")
def emoji_images() -> list[Image.Image]:
    return [Image.fromarray(render_svg(default_svg_dir() / f"{key}.svg", 64)) for key in HELD_OUT]


def test_the_sample_is_held_out():
    assert all(split_for_base(key, 0.1, 0) == "test" for key in HELD_OUT)


def test_shipped_weights_load_offline_and_are_marked_trained(tmp_path):
    code = "from embedspace import EmbeddingModel; m = EmbeddingModel.load('emoji-mini'); print(m.config.trained, m.fingerprint)"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", NO_PROXY="*", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "'image'" in result.stdout and "'audio'" in result.stdout


def test_embeddings_are_deterministic(model, emoji_images):
    first = model.embed_images(emoji_images[:3])
    np.testing.assert_array_equal(first, model.embed_images(emoji_images[:3]))


def test_text_queries_find_their_held_out_emoji(model, emoji_images):
    images = model.embed_images(emoji_images)
    texts = model.embed_text(list(HELD_OUT.values()))
    hits = np.argmax(texts @ images.T, axis=1) == np.arange(len(HELD_OUT))
    assert hits.mean() >= 0.6, dict(zip(HELD_OUT.values(), hits))


def test_held_out_images_are_closer_to_their_word_than_most_words(model, emoji_images):
    images = model.embed_images(emoji_images)
    texts = model.embed_text(list(HELD_OUT.values()))
    ranks = ((images @ texts.T) > np.sum(images * texts, axis=1, keepdims=True)).sum(axis=1)
    assert np.median(ranks) <= 1, ranks


def test_spoken_words_land_near_their_text(model):
    synthesizer = SpeechSynthesizer()
    words = ["cat", "dog", "rainbow", "fire", "fish", "apple"]
    texts = model.embed_text(words)
    for style in ("normal", "whispered", "shouted"):
        audio = model.embed_audio([synthesizer.synthesize(word, style) for word in words])
        hits = np.argmax(audio @ texts.T, axis=1) == np.arange(len(words))
        assert hits.mean() >= 0.5, (style, dict(zip(words, hits)))
