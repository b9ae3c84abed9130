"""Training sets for the generator: images, captions, balance groups and conditions.

Two sets, each with its recipe (tokenizer and prior sizes that fit the 2-core CPU; the
recipes are the presets ``embedspace/recipes/presets/generator/<set>.json``):

- ``emoji``: the images of ``embedspace data build`` box-filtered down to the
  generator's size: OpenMoji's for the tokenizer and the report, the recipe's
  ``prior_designs`` for the prior. The held-out split of the encoder stays held out
  (never trained on), so the quality report can ask for emoji the generator has never seen.
- ``shapes``: the coloured-shapes set of :mod:`embedspace.recipes.shapes`
  (16 jittered renders of each of 216 combinations); 12 combinations are held out.

Conditions are points of the encoder's space: the image tower's embedding of each
image (emoji only; the shapes are far outside the image tower's data), the text
tower's embedding of its caption, a spoken caption (emoji), and for the shapes the
embeddings of its three attribute captions as separate points (a prior that composes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from embedspace.generator.prior import PriorConfig
from embedspace.generator.tokenizer import TokenizerConfig
from embedspace.recipes import shapes
from embedspace.recipes.emoji import load_emoji_dataset, load_emoji_images
from embedspace.recipes.generator_training import TokenizerObjective
from embedspace.recipes.presets import load_presets
from embedspace.recipes.speech import load_speech_dataset
from embedspace.typed_config import from_json_dict

SHAPES = "shapes"
#: Jittered renders of each of the 216 combinations, and how far they move (of a cell):
#: seeing each shape at many offsets lets the prior draw it where it never saw it.
SHAPES_VARIANTS, SHAPES_JITTER = 16, 0.25


@dataclass(frozen=True)
class Recipe:
    """Sizes and optimisation of one generator (recorded in ``training-*.json`` beside it).

    The tokenizer's architecture and loss; the prior's epochs, batch and peak learning rate
    and its architecture (``n_*``, ``dropout``: the rest of its :class:`PriorConfig` comes
    from the data); how its conditions are drawn (``text_probability``,
    ``audio_probability``, ``condition_noise``, ``part_probability``, ``token_noise``: see
    :func:`embedspace.recipes.generator_training.train_prior`); ``balance_groups``, whether
    the prior draws its images so that every balance group (base emoji) weighs the same
    (True), or sees every image equally often (False: skin-tone variants are then not
    rarer than emoji without any); ``condition_parts``, the
    most points per image its prior takes; ``prior_designs``, the emoji designs whose
    images the prior trains on (the tokenizer trains on OpenMoji's, and the report
    measures on them).
    """

    image_size: int
    tokenizer: TokenizerConfig
    tokenizer_epochs: int
    tokenizer_batch_size: int
    tokenizer_lr: float
    prior_epochs: int
    prior_batch_size: int
    prior_lr: float
    n_prefix: int = 4
    n_layer: int = 6
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.1
    text_probability: float = 0.5
    audio_probability: float = 0.0
    condition_noise: float = 0.1
    part_probability: float = 0.0
    token_noise: float = 0.0
    balance_groups: bool = True
    condition_parts: int = 1
    prior_designs: tuple[str, ...] = ("openmoji",)
    tokenizer_objective: TokenizerObjective = field(default_factory=TokenizerObjective)

    def prior_config(self, condition_dim: int) -> PriorConfig:
        return PriorConfig(
            vocab_size=self.tokenizer.codebook_size, grid_size=self.tokenizer.grid_size, condition_dim=condition_dim,
            n_prefix=self.n_prefix, n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout,
            condition_parts=self.condition_parts,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        """A recipe from its JSON form (nested ``tokenizer`` and ``tokenizer_objective`` objects).

        Raises:
            ValueError: an unknown key, a missing one or a value of the wrong type (naming it).
        """
        if isinstance(data, dict):
            data = dict(data)
            if "tokenizer" in data:
                data["tokenizer"] = from_json_dict(TokenizerConfig, data["tokenizer"], "recipe 'tokenizer'")
            if "tokenizer_objective" in data:
                data["tokenizer_objective"] = from_json_dict(TokenizerObjective, data["tokenizer_objective"], "recipe 'tokenizer_objective'")
        recipe = from_json_dict(cls, data, "generator recipe")
        if recipe.tokenizer.image_size != recipe.image_size:
            raise ValueError(f"generator recipe: image_size {recipe.image_size} differs from the tokenizer's {recipe.tokenizer.image_size}")
        return recipe


#: The generator recipes by training set, from ``embedspace/recipes/presets/generator/*.json``
#: ("emoji": the shipped emoji-mini generator; "shapes": the coloured-shapes one).
RECIPES: dict[str, Recipe] = load_presets("generator", Recipe.from_dict)


@dataclass(frozen=True)
class GeneratorData:
    """One training set, row-aligned.

    Attributes:
        kind: "emoji" or "shapes" (the key of :data:`RECIPES`), or "space".
        images: (N, S, S, 3) uint8 at the generator's size.
        captions: N captions.
        groups: N balance groups (base emoji; the combination for shapes).
        split: (N,) "train" or "test" (never trained on).
        keys: N dataset keys (the emoji's code points, naming its spoken captions; shapes: their index).
        source: where the images came from (a dataset folder or "shapes").
        labels: the shapes' true attributes (shapes only).
        parts: per row, texts that each name one part of the image (shapes:
            :func:`embedspace.recipes.shapes.attribute_captions`); empty: none.
        full_size: (N, s, s, 3) uint8 images as the encoder should see them (emoji only).
        chosen_recipe: the recipe of a set without a preset (a space's images, sized by their
            number: :mod:`embedspace.recipes.generator_space`); None: ``RECIPES[kind]``.
    """

    kind: str
    images: np.ndarray
    captions: list[str]
    groups: list[str]
    split: np.ndarray
    keys: list[str]
    source: str
    labels: list[shapes.ShapeReading] = field(default_factory=list)
    parts: list[tuple[str, ...]] = field(default_factory=list)
    full_size: np.ndarray | None = None
    chosen_recipe: Recipe | None = None

    @property
    def train(self) -> np.ndarray:
        """Indices of the training rows."""
        return np.flatnonzero(self.split == "train")

    @property
    def recipe(self) -> Recipe:
        return self.chosen_recipe if self.chosen_recipe is not None else RECIPES[self.kind]


def shrink(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, s, s, 3) -> (N, size, size, 3), box-filtered (each output pixel averages its area)."""
    if images.shape[1] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BOX)) for image in images])


def heldout_shape(index: int) -> bool:
    """The 12 colour×shape×position combinations (of 216) the shapes generator never sees."""
    return index % 216 % 18 == 5


def load_generator_data(data: str | Path, designs: Sequence[str] = ("openmoji",)) -> GeneratorData:
    """The emoji set from a dataset folder built by ``embedspace data build``, or ``"shapes"``.

    ``designs``: the emoji designs to hold (default OpenMoji's, the tokenizer's and the
    report's; the prior trains on its recipe's ``prior_designs``). Rows of one emoji in
    several designs share its caption, key, balance group and split.

    Raises:
        FileNotFoundError: the folder holds no emoji dataset (the message says how to build it).
    """
    if str(data) == SHAPES:
        recipe = RECIPES[SHAPES]
        made = shapes.make_dataset(image_size=recipe.image_size, variants=SHAPES_VARIANTS, seed=0, jitter=SHAPES_JITTER)
        split = np.array(["test" if heldout_shape(i) else "train" for i in range(len(made.captions))])
        groups = [str(i % 216) for i in range(len(made.captions))]
        keys = [str(i) for i in range(len(made.captions))]
        parts = [shapes.attribute_captions(label.colour, label.shape, label.position) for label in made.labels]
        return GeneratorData(SHAPES, made.images, list(made.captions), groups, split, keys, SHAPES, list(made.labels), parts)

    folder = Path(data)
    if not (folder / "emoji.parquet").is_file():
        raise FileNotFoundError(f"{folder} holds no emoji dataset; build it with `embedspace data build --out {folder}`.")
    frame = load_emoji_dataset(folder, designs=tuple(designs))
    full = load_emoji_images(folder, frame)
    return GeneratorData(
        "emoji", shrink(full, RECIPES["emoji"].image_size), frame["caption"].tolist(), frame["base"].tolist(),
        frame["split"].to_numpy().astype(str), frame["key"].tolist(), str(folder), full_size=full,
    )


TRAINING_VOICES = ("normal", "whispered", "shouted", "slow")  # never the held-out voice


def embed_parts(data: GeneratorData, model) -> np.ndarray | None:
    """(N, K, D) float32: ``model``'s embedding of each row's part texts (``data.parts``), or None."""
    if not data.parts:
        return None
    unique = sorted({text for row in data.parts for text in row})
    vectors = dict(zip(unique, model.embed_text(unique, progress=False)))
    return np.stack([np.stack([vectors[text] for text in row]) for row in data.parts])


def embed_conditions(data: GeneratorData, model, seed: int = 0) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(image, caption, spoken caption) conditions, each (N, D) float32 unit rows from ``model``, or None.

    The spoken caption of each emoji is one clip in a training voice, the voice drawn
    per emoji with ``seed`` (the held-out voice stays unheard); shapes have captions only.
    A caption or clip shared by rows (one emoji in several designs) is embedded once.
    """
    unique_captions, caption_of = np.unique(np.asarray(data.captions, dtype=object), return_inverse=True)
    captions = model.embed_text(list(unique_captions), progress=True)[caption_of]
    if data.full_size is None:
        return None, captions, None
    images = model.embed_images([Image.fromarray(image) for image in data.full_size], progress=True)
    if model.audio is None:
        return images, captions, None

    folder = Path(data.source)
    clips = load_speech_dataset(folder)
    path = {(key, style): clip for key, style, clip in zip(clips["key"], clips["style"], clips["audio"])}
    keys = list(dict.fromkeys(data.keys))  # each emoji once, in order of first row
    voices = np.random.default_rng(seed).choice(TRAINING_VOICES, size=len(keys))
    audio = model.embed_audio([folder / path[(key, voice)] for key, voice in zip(keys, voices)], progress=True)
    row_of = {key: number for number, key in enumerate(keys)}
    return images, captions, audio[[row_of[key] for key in data.keys]]
