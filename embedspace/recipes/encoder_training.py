"""Train a model's image and audio towers against its frozen text tower (CLIP loss).

The text tower never changes, so its embeddings of the training texts are computed once
(:func:`text_targets`, cached beside the data) and the towers learn to land on them with
open_clip's contrastive loss (Radford et al., "Learning Transferable Visual Models From
Natural Language Supervision", 2021). Audio targets name content and manner
("dog, whispered") so that manner gets a place in the space.

Next to the contrastive loss, an alignment term ``1 - cos(output, target)`` pulls each
image and clip onto its caption's vector: the contrastive loss alone only ranks, and leaves
images and clips in a region of their own, far from every text (the modality gap), so that a
search over all modalities brings back texts only. The image tower trains on every emoji
design of the dataset (``designs``), with augmentations for how people draw: scale, crop,
rotation, line weight, colour and background.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from embedspace.models.audio import AudioTower, fit_length, load_audio
from embedspace.models.config import CONFIG_NAME, WEIGHTS_NAME, ModelConfig
from embedspace.models.model import EmbeddingModel
from embedspace.models.registry import resolve_model
from embedspace.recipes.emoji import load_emoji_dataset, load_emoji_images
from embedspace.recipes.emoji_designs import DESIGN_NAMES
from embedspace.recipes.loop import set_learning_rate, warmup_cosine
from embedspace.recipes.metrics import recall_at_k
from embedspace.recipes.presets import load_presets
from embedspace.recipes.speech import BUILDER_VERSION, PLAIN_MANNER, VOICE_STYLES, load_speech_dataset, speech_builder_version
from embedspace.typed_config import from_json_dict

logger = logging.getLogger(__name__)

TARGETS_FILE = "text-targets.npz"


@dataclass(frozen=True)
class EncoderTrainingConfig:
    """Hyper-parameters of :func:`train_encoder` (saved beside the weights).

    image_epochs / audio_epochs: passes over the (balanced) training set; 0 skips a tower.
    batch_size: items per contrastive batch. lr, weight_decay: AdamW with cosine decay and warm-up.
    heldout_styles: voice styles never used for audio training (kept for evaluation).
    balance_by_base: sample emoji with weight 1 / (number of skin-tone variants of its base).
    validation_fraction: share of training base emoji kept apart to pick the best epoch (never the test split).
    designs: emoji designs the image tower trains on (leave one out to measure a design never seen).
    alignment_weight: weight of the alignment term ``1 - cos(output, target)`` next to the
        contrastive loss for the image tower (0: contrastive only, which leaves a wide gap between modalities).
    audio_alignment_weight: the same for the audio tower. 0 in the presets: with weight 1 the small
        audio tower ranked captions worse (held-out voice R@5 0.387 against 0.475), and its clips
        reach their captions through the transcript instead (see ``embedspace/models/pretrained/README.md``).
    """

    image_epochs: int = 24
    audio_epochs: int = 16
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    seed: int = 0
    heldout_styles: tuple[str, ...] = ("heldout",)
    balance_by_base: bool = True
    validation_fraction: float = 0.06
    designs: tuple[str, ...] = DESIGN_NAMES
    alignment_weight: float = 1.0
    audio_alignment_weight: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EncoderTrainingConfig":
        """A config from its JSON form; an unknown key or a value of the wrong type is a ValueError naming it."""
        return from_json_dict(cls, data, "encoder training config")


#: Named configs, from ``embedspace/recipes/presets/encoder/*.json`` ("cpu": the shipped
#: weights, the defaults above; "gpu": larger batches and more audio epochs).
PRESETS: dict[str, EncoderTrainingConfig] = load_presets("encoder", EncoderTrainingConfig.from_dict)


def audio_target_text(caption: str, description: str) -> str:
    """The text an audio clip is trained to land on: the caption, plus its manner unless plainly spoken."""
    return caption if description in ("", PLAIN_MANNER) else f"{caption}, {description}"


def validation_split(base: str, split: str, fraction: float) -> str:
    """Move a deterministic ``fraction`` of training base emoji (all their variants together) to "validation"."""
    if split != "train":
        return split
    bucket = int(hashlib.sha256(f"validation:{base}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if bucket < fraction else split


def _with_validation(emoji: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """``emoji`` with :func:`validation_split` applied to its ``split`` column."""
    emoji["split"] = [validation_split(base, split, fraction) for base, split in zip(emoji["base"], emoji["split"])]
    return emoji


def training_config_of(model_name: str | Path) -> dict[str, Any] | None:
    """The training configuration recorded beside a model's weights (``training.json``'s ``config``), or None."""
    _, weights = resolve_model(model_name)
    record = weights.parent / "training.json" if weights is not None else None
    if record is None or not record.is_file():
        return None
    return json.loads(record.read_text()).get("config", {})


def text_targets(texts: list[str], data_dir: Path, model_name: str) -> np.ndarray:
    """Frozen text-tower embeddings ``(N, D)`` float32 of ``texts``, cached in ``data_dir/text-targets.npz``."""
    cache = Path(data_dir) / TARGETS_FILE
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["model"]) == model_name:
            known = dict(zip(stored["texts"].tolist(), stored["vectors"]))
    missing = sorted(set(texts) - set(known))
    if missing:
        logger.info("embedding %d training texts with the frozen text tower of %s", len(missing), model_name)
        vectors = EmbeddingModel.load(model_name).embed_text(missing, progress=True)
        known.update(zip(missing, vectors))
        names = sorted(known)
        np.savez(cache, model=np.array(model_name), texts=np.array(names), vectors=np.stack([known[name] for name in names]))
    return np.stack([known[text] for text in texts]).astype(np.float32)


def load_waveforms(paths: list[Path], sample_rate: int, seconds: float) -> np.ndarray:
    """Decode clips to ``(N, T)`` int16 at ``sample_rate`` (int16 halves memory; scaled back when batched)."""
    length = int(sample_rate * seconds)
    rows = np.zeros((len(paths), length), dtype=np.int16)
    for row, path in enumerate(tqdm(paths, desc="decoding audio", unit="clip", mininterval=5)):
        rows[row] = np.round(np.clip(fit_length(load_audio(path, sample_rate), length), -1, 1) * 32767)
    return rows


def build_image_tower(config: ModelConfig) -> nn.Module:
    """The image tower alone (no text tower needed), as open_clip builds it for this config."""
    from open_clip.model import _build_vision_tower  # the same builder CLIP uses for ``clip.visual``

    return _build_vision_tower(config.embed_dim, config.open_clip["model_cfg"]["vision_cfg"])


def augment_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Emoji as people draw them: ``(B, 3, H, W)`` images in [-1, 1] on white, each changed at random.

    Scale 0.75–1.25 (zoomed in, a crop; out, a margin), rotation ±12°, shift ±10%; line weight
    (a sixth a little thicker, a sixth thinner); colour (brightness ±0.05, contrast and
    saturation ×0.85–1.15, a hue turn of at most ±8°: small enough that a red heart stays red
    and skin tones stay apart); and for a quarter of them the white background becomes
    another colour.
    """
    count = images.shape[0]
    device = images.device

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, *shape, generator=generator, device=device)

    scale, angle = uniform(0.75, 1.25), uniform(-0.21, 0.21)
    shift_x, shift_y = uniform(-0.1, 0.1), uniform(-0.1, 0.1)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = (F.grid_sample(images - 1.0, grid, align_corners=False, padding_mode="zeros") + 2.0) / 2.0  # [0, 1], white outside

    stroke = torch.randint(0, 6, (count, 1, 1, 1), generator=generator, device=device)
    thicker = (images - F.max_pool2d(-images, 3, stride=1, padding=1)) / 2  # dark lines spread, half way
    thinner = (images + F.max_pool2d(images, 3, stride=1, padding=1)) / 2
    images = torch.where(stroke == 1, thicker, torch.where(stroke == 2, thinner, images))

    white = ((images.min(dim=1, keepdim=True).values - 0.9) / 0.1).clamp(0, 1)  # 1 on the white background
    grey = images.mean(dim=1, keepdim=True)
    images = grey + (images - grey) * uniform(0.85, 1.15, 1, 1, 1)  # saturation
    images = _turn_hue(images, uniform(-0.14, 0.14))
    images = (images - 0.5) * uniform(0.85, 1.15, 1, 1, 1) + 0.5 + uniform(-0.05, 0.05, 1, 1, 1)  # contrast, brightness
    background = torch.rand(count, 3, 1, 1, generator=generator, device=device)
    recolour = (torch.rand(count, 1, 1, 1, generator=generator, device=device) < 1 / 4) * white
    images = images * (1 - recolour) + background * recolour
    return images.clamp(0, 1) * 2.0 - 1.0


def _turn_hue(images: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Turn the hue of ``(B, 3, H, W)`` RGB images by ``angle`` (radians, per image) about the grey axis."""
    axis = torch.full((3,), 1 / math.sqrt(3), device=images.device)
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], device=images.device) / math.sqrt(3)
    rotation = cos * torch.eye(3, device=images.device) + sin * cross + (1 - cos) * torch.outer(axis, axis)  # Rodrigues, (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", rotation, images)


def augment_audio(waveforms: torch.Tensor, generator: torch.Generator, sample_rate: int) -> torch.Tensor:
    """Random speed/pitch change (×0.82–1.22, like another speaker), delay (≤0.25 s), gain (±3 dB), faint noise on ``(B, T)``."""
    count, length = waveforms.shape
    device = waveforms.device
    factor = float(torch.exp(torch.empty(1, device=device).uniform_(-0.2, 0.2, generator=generator)))  # one factor per batch
    stretched = F.interpolate(waveforms[:, None, :], scale_factor=factor, mode="linear", align_corners=False)[:, 0]
    waveforms = F.pad(stretched, (0, max(0, length - stretched.shape[1])))[:, :length]
    delays = (torch.rand(count, generator=generator, device=device) * 0.25 * sample_rate).long()
    positions = torch.arange(length, device=device)[None, :] - delays[:, None]
    shifted = torch.where(positions >= 0, torch.gather(waveforms, 1, positions.clamp(min=0)), torch.zeros_like(waveforms))
    gain = 10 ** ((torch.rand(count, 1, generator=generator, device=device) * 6 - 3) / 20)
    noise = torch.randn(shifted.shape, generator=generator, device=device) * 10 ** (-3.5 + torch.rand(count, 1, generator=generator, device=device))
    return shifted * gain + noise


def clip_loss(features: torch.Tensor, targets: torch.Tensor, logit_scale: torch.Tensor, alignment_weight: float = 0.0) -> torch.Tensor:
    """open_clip's symmetric contrastive loss between tower outputs and fixed unit text targets,
    plus ``alignment_weight`` times the mean of ``1 - cos(output, target)`` (pulls outputs onto their targets)."""
    from open_clip.loss import ClipLoss

    features = F.normalize(features, dim=-1)
    loss = ClipLoss()(features, targets, logit_scale.exp())
    if alignment_weight:
        loss = loss + alignment_weight * (1.0 - (features * targets).sum(dim=-1)).mean()
    return loss


def fit_tower(
    tower: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    epochs: int,
    config: EncoderTrainingConfig,
    prepare,
    name: str,
    progress: bool = True,
    validate=None,
    alignment_weight: float = 0.0,
) -> dict[str, list[float]]:
    """Train ``tower`` so that ``prepare(inputs[batch])`` lands on ``targets[batch]``.

    inputs: ``(N, ...)`` on the training device; targets ``(N, D)`` float32 unit rows; weights ``(N,)`` sampling weights.
    validate: optional ``validate(tower) -> float`` (higher is better) run after each epoch; the
        tower keeps the weights of its best epoch (early stopping on a validation split).
    alignment_weight: weight of the alignment term of :func:`clip_loss`.
    Returns the mean training loss per epoch and the validation score per epoch.
    """
    device = targets.device
    generator = torch.Generator(device=device).manual_seed(config.seed)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    parameters = list(tower.parameters()) + [logit_scale]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(inputs) // config.batch_size)
    total_steps, step = epochs * steps_per_epoch, 0
    history, scores = [], []
    best_state, best_score = None, -math.inf
    tower.train()
    bar = tqdm(range(epochs), desc=f"training {name} tower", unit="epoch", disable=not progress)
    for _ in bar:
        order = torch.multinomial(weights, steps_per_epoch * config.batch_size, replacement=True, generator=generator)
        losses = []
        for i in range(steps_per_epoch):
            batch = order[i * config.batch_size : (i + 1) * config.batch_size]
            set_learning_rate(optimizer, config.lr * warmup_cosine(step, total_steps, config.warmup_steps))
            loss = clip_loss(tower(prepare(inputs[batch], generator)), targets[batch], logit_scale, alignment_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            with torch.no_grad():
                logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        if validate is not None:
            tower.eval()
            scores.append(float(validate(tower)))
            tower.train()
            if scores[-1] > best_score:
                best_score = scores[-1]
                best_state = {key: value.detach().clone() for key, value in tower.state_dict().items()}
        bar.set_postfix(loss=f"{history[-1]:.3f}", val=f"{scores[-1]:.3f}" if scores else "-")
        logger.info("%s tower epoch %d/%d: loss %.4f, validation %s", name, len(history), epochs, history[-1], f"{scores[-1]:.4f}" if scores else "-")
    if best_state is not None:
        tower.load_state_dict(best_state)
        logger.info("%s tower: kept epoch %d (validation %.4f)", name, int(np.argmax(scores)) + 1, best_score)
    tower.eval()
    return {"loss": history, "validation": scores}


def similarities(vectors: torch.Tensor, candidates: torch.Tensor) -> np.ndarray:
    """Cosine similarities ``(Q, C)`` float32 of tower outputs ``(Q, D)`` (normalised here) to unit candidates ``(C, D)``."""
    return (F.normalize(vectors, dim=-1) @ candidates.T).cpu().numpy()


def embed_in_batches(tower: nn.Module, inputs: torch.Tensor, prepare, batch_size: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([tower(prepare(inputs[start : start + batch_size])) for start in range(0, len(inputs), batch_size)])


def _balance_weights(bases: pd.Series) -> torch.Tensor:
    counts = bases.map(bases.value_counts())
    return torch.tensor((1.0 / counts).to_numpy(), dtype=torch.float32)


def model_readme(config: ModelConfig, record: dict) -> str:
    """The README written beside trained weights: what they are and exactly how they were made."""
    data = record.get("data", {})
    packages = ", ".join(f"{name} {version}" for name, version in sorted(data.get("packages", {}).items())) or "unknown"
    command = record.get("command") or f"train_encoder(data_dir, out_dir, model={record['model']!r}, config={record['config']})"
    epochs = ", ".join(f"{name}: epoch {epoch} of {len(record['loss_per_epoch'][name]['loss'])}" for name, epoch in record.get("best_epoch", {}).items())
    return "\n".join(
        [
            f"# {config.name} weights",
            "",
            config.description,
            "",
            "`config.json` describes the model, `model.safetensors` holds the trained towers, `training.json` the exact",
            "training configuration, the loss and validation score of every epoch, the data version and the weights hash.",
            "`evaluation.md` / `evaluation.json`, when present, are the held-out report of `embedspace eval`.",
            "",
            "## How these weights were made",
            "",
            "```bash",
            command,
            "```",
            "",
            f"- Device: {record['device']}, {record.get('threads', '?')} torch threads; {record['seconds'] / 60:.1f} minutes in all.",
            f"- Seed {record['config']['seed']}; the same command and data give the same weights (sha256 `{record['weights_sha256'][:16]}…`).",
            f"- Data: {record['train_images']} training and {record['validation_images']} validation images "
            f"(designs: {', '.join(record['config'].get('designs', ['openmoji']))}); "
            f"dataset builder version {data.get('builder_version', '?')} ({packages}); speech builder version "
            f"{record.get('speech_data', {}).get('builder_version', '?')} ({', '.join(record.get('speech_data', {}).get('styles', [])) or 'no'} voices).",
            f"- Kept epochs (best validation recall@5): {epochs or 'the last'}.",
            "",
        ]
    )


def train_encoder(
    data_dir: str | Path,
    out_dir: str | Path,
    model: str = "emoji-mini",
    config: EncoderTrainingConfig = PRESETS["cpu"],
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Train the image and audio towers of ``model`` on the emoji dataset in ``data_dir``; write a model folder.

    ``data_dir`` is made by :func:`embedspace.recipes.emoji.build_emoji_dataset` and
    :func:`embedspace.recipes.speech.build_speech_dataset`. The folder written to ``out_dir``
    holds ``config.json``, ``model.safetensors``, ``training.json`` and a README with the command.
    """
    started = time.time()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    base_config, _ = resolve_model(model)
    if "model_cfg" not in base_config.open_clip:
        raise ValueError(f"model {model!r} has a pretrained open_clip image tower; train_encoder trains towers built from a model_cfg")
    torch.manual_seed(config.seed)
    emoji = _with_validation(load_emoji_dataset(data_dir), config.validation_fraction)  # OpenMoji: one row per concept
    drawn = _with_validation(load_emoji_dataset(data_dir, designs=config.designs), config.validation_fraction)  # every design trained on
    train = drawn[drawn["split"] == "train"].reset_index(drop=True)
    valid = drawn[drawn["split"] == "validation"].reset_index(drop=True)
    known_captions = sorted(set(train["caption"]) | set(valid["caption"]))  # the test split's captions stay unseen
    caption_vectors = torch.from_numpy(text_targets(known_captions, data_dir, model)).to(device)
    caption_position = {caption: row for row, caption in enumerate(known_captions)}
    history: dict[str, dict[str, list[float]]] = {}

    image_tower = build_image_tower(base_config).to(device)
    if config.image_epochs > 0:
        pixels = torch.from_numpy(load_emoji_images(data_dir, train)).to(device)  # (N, H, W, 3) uint8
        image_targets = torch.from_numpy(text_targets(train["caption"].tolist(), data_dir, model)).to(device)
        weights = _balance_weights(train["base"]) if config.balance_by_base else torch.ones(len(train))

        def to_float(batch: torch.Tensor) -> torch.Tensor:
            return batch.permute(0, 3, 1, 2).float() / 127.5 - 1.0

        def prepare_images(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return augment_images(to_float(batch), generator)

        valid_pixels = torch.from_numpy(load_emoji_images(data_dir, valid)).to(device)
        valid_correct = np.array([caption_position[caption] for caption in valid["caption"]])

        def validate_images(tower: nn.Module) -> float:
            return recall_at_k(similarities(embed_in_batches(tower, valid_pixels, to_float), caption_vectors), valid_correct, 5)

        history["image"] = fit_tower(
            image_tower, pixels, image_targets, weights.to(device), config.image_epochs, config, prepare_images, "image", progress, validate_images if len(valid) else None,
            alignment_weight=config.alignment_weight,
        )

    audio_tower = AudioTower(base_config.audio, base_config.embed_dim).to(device) if base_config.audio else None
    if audio_tower is not None and config.audio_epochs > 0:
        if speech_builder_version(data_dir) != BUILDER_VERSION:
            logger.warning("the speech in %s is not from the current builder (version %d); `embedspace data build --out %s` brings it up to date", data_dir, BUILDER_VERSION, data_dir)
        all_speech = load_speech_dataset(data_dir)
        all_speech["split"] = all_speech["key"].map(dict(zip(emoji["key"], emoji["split"])))
        speech = all_speech[(all_speech["split"] == "train") & ~all_speech["style"].isin(config.heldout_styles)].reset_index(drop=True)
        valid_speech = all_speech[(all_speech["split"] == "validation") & ~all_speech["style"].isin(config.heldout_styles)].reset_index(drop=True)
        texts = [audio_target_text(row.caption, VOICE_STYLES[row.style].description) for row in speech.itertuples()]
        audio_targets = torch.from_numpy(text_targets(texts, data_dir, model)).to(device)
        audio_config = base_config.audio
        waveforms = torch.from_numpy(load_waveforms([data_dir / path for path in speech["audio"]], audio_config.sample_rate, audio_config.max_seconds)).to(device)
        bases = speech["key"].map(dict(zip(emoji["key"], emoji["base"])))
        weights = _balance_weights(bases) if config.balance_by_base else torch.ones(len(speech))

        def to_float_audio(batch: torch.Tensor) -> torch.Tensor:
            return batch.float() / 32767.0

        def prepare_audio(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return augment_audio(to_float_audio(batch), generator, audio_config.sample_rate)

        valid_waves = torch.from_numpy(load_waveforms([data_dir / path for path in valid_speech["audio"]], audio_config.sample_rate, audio_config.max_seconds)).to(device)
        valid_audio_correct = np.array([caption_position[caption] for caption in valid_speech["caption"]])

        def validate_audio(tower: nn.Module) -> float:
            return recall_at_k(similarities(embed_in_batches(tower, valid_waves, to_float_audio), caption_vectors), valid_audio_correct, 5)

        history["audio"] = fit_tower(
            audio_tower, waveforms, audio_targets, weights.to(device), config.audio_epochs, config, prepare_audio, "audio", progress, validate_audio if len(valid_speech) else None,
            alignment_weight=config.audio_alignment_weight,
        )

    trained = tuple(name for name in ("image", "audio") if name in history)
    final = replace(base_config, trained=("text",) + trained)
    out_dir.mkdir(parents=True, exist_ok=True)
    final.save(out_dir / CONFIG_NAME)
    state = {f"clip.visual.{key}": value for key, value in image_tower.state_dict().items()}
    if audio_tower is not None:
        state.update({f"audio.{key}": value for key, value in audio_tower.state_dict().items()})
    save_file({key: value.detach().float().cpu().contiguous() if value.is_floating_point() else value.cpu().contiguous() for key, value in state.items()}, str(out_dir / WEIGHTS_NAME))
    data_version = json.loads((data_dir / "dataset.json").read_text()) if (data_dir / "dataset.json").is_file() else {}
    speech_version = json.loads((data_dir / "speech.json").read_text()) if (data_dir / "speech.json").is_file() else {}
    record = {
        "model": model,
        "config": asdict(config),
        "device": device,
        "seconds": round(time.time() - started, 1),
        "loss_per_epoch": history,
        "train_images": len(train),
        "validation_images": len(valid),
        "data": data_version,
        "speech_data": {key: speech_version[key] for key in ("builder_version", "counts", "espeak_ng") if key in speech_version}
        | {"styles": [style["name"] for style in speech_version.get("styles", [])]},
        "command": " ".join(["embedspace", *sys.argv[1:]]) if sys.argv and "embedspace" in sys.argv[0] else None,
        "threads": torch.get_num_threads(),
        "best_epoch": {name: int(np.argmax(scores["validation"])) + 1 for name, scores in history.items() if scores["validation"]},
        "weights_sha256": hashlib.sha256((out_dir / WEIGHTS_NAME).read_bytes()).hexdigest(),
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    (out_dir / "README.md").write_text(model_readme(final, record))
    logger.info("trained %s in %.0f s; wrote %s", ", ".join(trained), record["seconds"], out_dir)
    return out_dir
