"""The generator's quality report: ``embedspace eval generator``.

Five questions, each answered with the encoder and a pixel analyser, never by eye:

- **Fidelity**: does a generated image's own embedding retrieve the caption it was
  conditioned on, in the top 5 of all captions? Conditioned on the caption's text, on
  the real image's embedding, and on spoken captions (a training voice and the voice no
  tower ever heard), for training and held-out emoji; next to the same measure for the
  real images (the ceiling), at full and at the generator's size, and for the
  tokenizer's reconstructions.
- **Diversity**: mean pairwise embedding distance (1 − cosine) and pixel distance
  among samples of one condition, as guidance and temperature move, with the fidelity
  at each setting (the trade-off between the two).
- **Interpolation**: along slerp paths between two captions (one seed per path, as
  ``Space.generate_between`` does), does the generated images' similarity to the end
  point rise steadily? Spearman rank correlation of (similarity to b − similarity to
  a) with the step.
- **Editing**: real emoji edited toward another caption with a region kept token for
  token: does the kept region stay close to the original (pixel difference, kept against
  redrawn) and does the image move toward the new caption (cosine before and after)?
- **Controllability**: a second generator trained the same way on the coloured-shapes
  set; images generated from caption embeddings, and (where it composes) from the three
  attribute captions as separate points, are read back by
  :func:`embedspace.recipes.shapes.analyse` (colour, shape, position), for seen
  and held-out combinations.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from embedspace.durable import write_bytes_atomic
from embedspace.generator.editing import keep_mask
from embedspace.generator.options import GenerationRequest, SamplingOptions
from embedspace.generator.pipeline import Generator, resolve_folder
from embedspace.models.model import EmbeddingModel
from embedspace.recipes import shapes
from embedspace.recipes.generator_data import GeneratorData, heldout_shape, load_generator_data
from embedspace.recipes.generator_evaluation import encode_images, prior_diagnostics, reconstruct_images
from embedspace.recipes.metrics import recall_at_k
from embedspace.recipes.speech import load_speech_dataset

logger = logging.getLogger(__name__)

K = 5


@dataclass(frozen=True)
class ReportSettings:
    """How much the report samples (the defaults take about 10 minutes on 2 CPU cores)."""

    emoji_per_split: int = 150
    guidance: float = 3.0
    diversity_conditions: int = 24
    diversity_samples: int = 6
    guidances: tuple[float, ...] = (1.0, 3.0, 5.0)
    temperatures: tuple[float, ...] = (0.7, 1.3)
    interpolation_pairs: int = 24
    interpolation_steps: int = 8
    interpolation_seeds: int = 3
    shapes_samples: int = 4
    best_of: int = 4
    edit_pairs: int = 24
    edit_regions: tuple[str, ...] = ("top", "left")
    seed: int = 0


def _recall(vectors: np.ndarray, caption_vectors: np.ndarray, correct: np.ndarray, k: int = K) -> float:
    """Fraction of rows of ``vectors`` (n, D) whose ``correct`` caption is among the k most similar of all (C, D) captions."""
    return recall_at_k(vectors @ caption_vectors.T, correct, k)


def _embed(model, images: list[Image.Image]) -> np.ndarray:
    return model.embed_images(images, progress=False)


def _generate(generator: Generator, conditions: np.ndarray, options: SamplingOptions) -> list[Image.Image]:
    """One image per condition ``(N, D)``."""
    return generator.generate(GenerationRequest(conditions, n=1), options, batch_size=64).images


def fidelity(generator: Generator, model, data: GeneratorData, captions: list[str], caption_vectors: np.ndarray,
             settings: ReportSettings) -> dict[str, Any]:
    """Caption R@5 of generated images per condition source and split, with the real-image ceilings."""
    index = {caption: position for position, caption in enumerate(captions)}
    rng = np.random.default_rng(settings.seed)
    speech = load_speech_dataset(Path(data.source))
    clip = {(key, style): path for key, style, path in zip(speech["key"], speech["style"], speech["audio"])}
    result: dict[str, Any] = {"captions": len(captions), "k": K, "splits": {}, "reliance": {}}
    for split in ("train", "test"):
        rows = np.flatnonzero(data.split == split)
        rows = np.sort(rng.choice(rows, size=min(settings.emoji_per_split, len(rows)), replace=False))
        correct = np.array([index[data.captions[row]] for row in rows])
        real = [Image.fromarray(data.full_size[row]) for row in rows]
        conditions = {
            "text": caption_vectors[correct],
            "image": _embed(model, real),
            "audio, training voice (normal)": model.embed_audio(
                [Path(data.source) / clip[(data.keys[row], "normal")] for row in rows], progress=False),
            "audio, held-out voice": model.embed_audio(
                [Path(data.source) / clip[(data.keys[row], "heldout")] for row in rows], progress=False),
        }
        scores = {"emoji": len(rows)}
        scores["ceiling: real images, full size"] = _recall(conditions["image"], caption_vectors, correct)
        small = data.images[rows]
        scores["ceiling: real images, generator size"] = _recall(
            _embed(model, [Image.fromarray(image) for image in small]), caption_vectors, correct)
        scores["ceiling: tokenizer reconstructions"] = _recall(
            _embed(model, [Image.fromarray(image) for image in reconstruct_images(generator.tokenizer, small)]),
            caption_vectors, correct)
        options = SamplingOptions(guidance=settings.guidance, seed=settings.seed)
        for name, vectors in conditions.items():
            images = _generate(generator, vectors, options)
            scores[f"generated from {name}"] = _recall(_embed(model, images), caption_vectors, correct)
        if settings.best_of > 1:  # the encoder that judges also picks: an upper bound of what reranking gives
            drawn = generator.generate(GenerationRequest(conditions["text"], n=settings.best_of), options, batch_size=64)
            best = drawn.closest(_embed(model, drawn.images), settings.best_of, 1)
            scores[f"generated from text, best of {settings.best_of} by the encoder"] = _recall(
                _embed(model, best.images), caption_vectors, correct)
        result["splits"][split] = scores
        codes = encode_images(generator.tokenizer, small)
        result["reliance"][split] = {
            name: prior_diagnostics(generator.prior, codes, vectors).loss
            for name, vectors in (("its caption", conditions["text"]), ("another emoji's caption", np.roll(conditions["text"], 1, axis=0)),
                                  ("no condition (the null prefix)", None))
        }
    result["chance"] = K / len(captions)
    return result


def _pairwise_mean(distances: np.ndarray) -> float:
    n = distances.shape[0]
    return float(distances[~np.eye(n, dtype=bool)].mean())


def diversity(generator: Generator, model, caption_vectors: np.ndarray, settings: ReportSettings) -> list[dict[str, Any]]:
    """Diversity and fidelity of ``diversity_samples`` images per caption, per (guidance, temperature)."""
    rng = np.random.default_rng(settings.seed + 1)
    chosen = np.sort(rng.choice(len(caption_vectors), size=min(settings.diversity_conditions, len(caption_vectors)), replace=False))
    n = settings.diversity_samples
    grid = [(g, 1.0) for g in settings.guidances] + [(settings.guidance, t) for t in settings.temperatures]
    rows = []
    for guidance, temperature in grid:
        result = generator.generate(GenerationRequest(caption_vectors[chosen], n=n),
                                    SamplingOptions(guidance=guidance, temperature=temperature, seed=settings.seed), batch_size=64)
        vectors = _embed(model, result.images).reshape(len(chosen), n, -1)
        pixels = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in result.images])
        pixels = pixels.reshape(len(chosen), n, -1)
        embedding_spread = np.mean([_pairwise_mean(1 - v @ v.T) for v in vectors])
        pixel_spread = np.mean([
            _pairwise_mean(np.abs(p[:, None, :] - p[None, :, :]).mean(axis=2)) for p in pixels])
        recall = _recall(vectors.reshape(len(chosen) * n, -1), caption_vectors, np.repeat(chosen, n))
        rows.append({"guidance": guidance, "temperature": temperature, "embedding_diversity": float(embedding_spread),
                     "pixel_diversity": float(pixel_spread), "caption_R@5": recall})
    return rows


def interpolation(generator: Generator, model, caption_vectors: np.ndarray, settings: ReportSettings) -> dict[str, Any]:
    """Monotonicity of the similarity to the end points along slerp paths between captions."""
    rng = np.random.default_rng(settings.seed + 2)
    steps = settings.interpolation_steps
    correlations, curves, ends = [], [], []
    for _ in range(settings.interpolation_pairs):
        a, b = rng.choice(len(caption_vectors), size=2, replace=False)
        path = GenerationRequest.between(caption_vectors[a], caption_vectors[b], steps)  # slerp, one seed along it
        gaps = []
        for seed in range(settings.interpolation_seeds):
            options = SamplingOptions(guidance=settings.guidance, seed=settings.seed + seed)
            images = generator.generate(path, options, batch_size=64).images
            vectors = _embed(model, images)
            gaps.append(vectors @ caption_vectors[b] - vectors @ caption_vectors[a])  # (steps,)
        gap = np.mean(gaps, axis=0)
        correlations.append(float(spearmanr(np.arange(steps), gap).statistic))
        curves.append(gap)
        ends.append((gap[0] < 0) and (gap[-1] > 0))
    curve = np.mean(curves, axis=0)
    return {
        "pairs": settings.interpolation_pairs, "steps": steps, "seeds_per_path": settings.interpolation_seeds,
        "mean_spearman": float(np.mean(correlations)),
        "pairs_spearman_at_least_0.8": float(np.mean(np.array(correlations) >= 0.8)),
        "pairs_ends_closer_to_own_caption": float(np.mean(ends)),
        "mean_gap_per_step": [float(x) for x in curve],
        "mean_curve_monotonic": bool(np.all(np.diff(curve) >= 0)),
    }


def editing(generator: Generator, model, data: GeneratorData, caption_vectors: np.ndarray, settings: ReportSettings) -> dict[str, Any]:
    """Edits of real emoji toward another caption: does the kept region stay and does the image move toward the new point?

    For each region, ``edit_pairs`` training emoji (at the generator's size) are edited toward
    a random other caption: mean absolute pixel difference (0–1) to the original inside the
    kept region and inside the redrawn one, and the cosine of the image's embedding to the
    new caption before and after (with the share of edits where it rose).
    """
    rng = np.random.default_rng(settings.seed + 3)
    rows = np.flatnonzero(data.split == "train")
    rows = rng.choice(rows, size=min(settings.edit_pairs, len(rows)), replace=False)
    targets = rng.integers(0, len(caption_vectors), size=len(rows))
    grid, size = generator.prior.config.grid_size, generator.image_size
    originals = [Image.fromarray(data.images[row]).resize((size, size), Image.Resampling.BOX) for row in rows]
    before = np.einsum("nd,nd->n", _embed(model, originals), caption_vectors[targets])
    result: dict[str, Any] = {"pairs": len(rows), "regions": []}
    for region in settings.edit_regions:
        kept = np.kron(keep_mask(region, grid), np.ones((size // grid, size // grid), bool))  # (size, size) pixels
        edited = []
        for number, (image, target) in enumerate(zip(originals, targets)):
            options = SamplingOptions(guidance=settings.guidance, seed=settings.seed + number)
            edited.append(generator.edit(image, GenerationRequest(caption_vectors[target], n=1), region, options).images[0])
        difference = np.stack([np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean(axis=2) / 255 for a, b in zip(edited, originals)])
        after = np.einsum("nd,nd->n", _embed(model, edited), caption_vectors[targets])
        result["regions"].append({
            "keep": region,
            "pixel_difference_kept": float(difference[:, kept].mean()),
            "pixel_difference_redrawn": float(difference[:, ~kept].mean()),
            "cosine_to_new_point_before": float(before.mean()),
            "cosine_to_new_point_after": float(after.mean()),
            "share_moved_toward_new_point": float(np.mean(after > before)),
        })
    return result


def controllability(generator: Generator, model, settings: ReportSettings) -> dict[str, Any]:
    """Pixel-analyser accuracy of the shapes generator on seen and held-out combinations."""
    clean = shapes.make_dataset(image_size=generator.image_size)
    conditions = model.embed_text(clean.captions, progress=False)
    groups = {"seen": [i for i in range(len(clean.labels)) if not heldout_shape(i)],
              "held out": [i for i in range(len(clean.labels)) if heldout_shape(i)]}
    n = settings.shapes_samples
    result: dict[str, Any] = {
        "analyser_on_clean_renders": shapes.accuracy(list(clean.images), clean.labels)["all"],
        "tokenizer_reconstructions": shapes.accuracy(
            list(reconstruct_images(generator.tokenizer, clean.images)), clean.labels),
        "combinations": {name: len(rows) for name, rows in groups.items()},
        "samples_per_combination": n,
        "generated": [],
    }
    ways = [("caption", 1.0, 0.0), ("caption", settings.guidance, 0.0), ("caption", settings.guidance, 0.1)]
    if generator.condition_parts >= 3:  # a generator that composes: ask for the three attributes too
        attributes = [shapes.attribute_captions(label.colour, label.shape, label.position) for label in clean.labels]
        parts = model.embed_text([text for row in attributes for text in row], progress=False).reshape(len(attributes), 3, -1)
        ways += [("attributes composed", 1.0, 0.1), ("attributes composed", settings.guidance, 0.1)]
    for condition, guidance, plausibility in ways:
        row = {"condition": condition, "guidance": guidance, "plausibility": plausibility}
        for name, rows in groups.items():
            options = SamplingOptions(guidance=guidance, plausibility=plausibility, seed=settings.seed)
            request = GenerationRequest(conditions[rows], n=n) if condition == "caption" else GenerationRequest.composed(parts[rows], n=n)
            images = generator.generate(request, options, batch_size=128).images
            row[name] = shapes.accuracy(images, [clean.labels[i] for i in rows for _ in range(n)])
        result["generated"].append(row)
    return result


def evaluate_generator(
    generator: Generator, model, data: GeneratorData, shapes_generator: Generator | None,
    settings: ReportSettings = ReportSettings(), name: str = "generator",
) -> dict[str, Any]:
    """Every measure of the report as a JSON-ready dict."""
    for part in (generator, shapes_generator):
        if part is not None:
            part.check_compatible(model.model_id)
    metrics: dict[str, Any] = {
        "generator": name, "encoder": model.model_id, "encoder_fingerprint": model.fingerprint,
        "settings": asdict(settings),
    }
    captions = sorted(set(data.captions))
    caption_vectors = model.embed_text(captions, progress=False)
    parts = {
        "fidelity": lambda: fidelity(generator, model, data, captions, caption_vectors, settings),
        "diversity": lambda: diversity(generator, model, caption_vectors, settings),
        "interpolation": lambda: interpolation(generator, model, caption_vectors, settings),
        "editing": lambda: editing(generator, model, data, caption_vectors, settings),
    }
    if shapes_generator is not None:
        parts["controllability"] = lambda: controllability(shapes_generator, model, settings)
    for part, measure in tqdm(parts.items(), desc="generator report", unit="part"):
        metrics[part] = measure()
    return metrics


def render_markdown(metrics: dict[str, Any]) -> str:
    """The report as markdown tables with a sentence on how to read each."""
    fid = metrics["fidelity"]
    s = metrics["settings"]
    lines = [
        f"# Quality of generator `{metrics['generator']}` (encoder `{metrics['encoder']}`, weights {metrics['encoder_fingerprint']})",
        "",
        f"Reproduce with `embedspace eval generator {metrics['generator']}`. Sampling: guidance {s['guidance']}, "
        "plausibility 0.1, temperature 1, one image per condition unless said.",
        "",
        "## Fidelity: generated image → its conditioning caption",
        "",
        f"Caption recall@{fid['k']} among all {fid['captions']} captions of the generated image's own embedding "
        f"(chance {fid['chance']:.4f}). Held-out emoji were never seen by the generator nor by the image tower. "
        "\"Best of k by the encoder\" draws k images and keeps the one whose embedding is closest to the "
        "condition (`space.generate(..., best_of=k)`); the same encoder then judges it, so that row is optimistic.",
        "",
        "| | training emoji | held-out emoji |",
        "| --- | --- | --- |",
    ]
    train, test = fid["splits"]["train"], fid["splits"]["test"]
    for key in train:
        if key != "emoji":
            lines.append(f"| {key} | {train[key]:.3f} | {test[key]:.3f} |")
    lines.append(f"| emoji sampled | {train['emoji']} | {test['emoji']} |")
    if "reliance" in fid:  # reports written before it lack this table
        lines += [
            "",
            "How much the prior leans on its condition: its teacher-forced loss (nats per code) on the same emoji's "
            "codes given each condition. A prior that recalls training images from their first codes scores "
            "nearly as well with no condition as with the right one, and its samples drift once a code goes astray.",
            "",
            "| condition given | training emoji | held-out emoji |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {name} | {loss:.3f} | {fid['reliance']['test'][name]:.3f} |" for name, loss in fid["reliance"]["train"].items()]
    lines += [
        "",
        "## Diversity against guidance and temperature",
        "",
        f"{s['diversity_samples']} images per caption for {s['diversity_conditions']} captions: mean pairwise "
        "1 − cosine of their embeddings and mean absolute pixel difference (0–1), and their caption R@5.",
        "",
        "| guidance | temperature | embedding diversity | pixel diversity | caption R@5 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in metrics["diversity"]:
        lines.append(f"| {row['guidance']} | {row['temperature']} | {row['embedding_diversity']:.3f} | "
                     f"{row['pixel_diversity']:.3f} | {row['caption_R@5']:.3f} |")
    inter = metrics["interpolation"]
    lines += [
        "",
        "## Interpolation",
        "",
        f"{inter['pairs']} slerp paths of {inter['steps']} steps between two captions a and b, each generated with "
        f"{inter['seeds_per_path']} seeds (one seed along a path). Gap = cosine(image, b) − cosine(image, a), averaged over seeds.",
        "",
        f"- mean Spearman correlation of the gap with the step: **{inter['mean_spearman']:.3f}** (1 = perfectly monotonic)",
        f"- paths with Spearman ≥ 0.8: {inter['pairs_spearman_at_least_0.8']:.2f}",
        f"- paths whose first image is closer to a and last closer to b: {inter['pairs_ends_closer_to_own_caption']:.2f}",
        f"- mean gap per step: {', '.join(f'{x:+.3f}' for x in inter['mean_gap_per_step'])} "
        f"({'monotonic' if inter['mean_curve_monotonic'] else 'not monotonic'})",
    ]
    if "editing" in metrics:
        edit = metrics["editing"]
        lines += [
            "",
            "## Editing",
            "",
            f"{edit['pairs']} training emoji edited toward a random other caption, keeping one region token for token "
            "(`Generator.edit`). Pixel difference to the original (mean absolute, 0–1) inside the kept and the redrawn "
            "region; cosine of the image's embedding to the new caption before and after the edit.",
            "",
            "| kept | pixel difference, kept | pixel difference, redrawn | cosine to new point before | after | edits that moved toward it |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in edit["regions"]:
            lines.append(f"| {row['keep']} | {row['pixel_difference_kept']:.3f} | {row['pixel_difference_redrawn']:.3f} | "
                         f"{row['cosine_to_new_point_before']:.3f} | {row['cosine_to_new_point_after']:.3f} | {row['share_moved_toward_new_point']:.2f} |")
    if "controllability" in metrics:
        c = metrics["controllability"]
        lines += [
            "",
            "## Controllability: coloured shapes",
            "",
            f"A second generator (`shapes`, same code, conditioned on the encoder's caption embeddings) generates "
            f"{c['samples_per_combination']} images per combination, from its caption (\"red circle at the top left\") or, "
            f"where the generator composes, from its three attributes as separate points (\"red shape\", \"circle\", "
            f"\"shape at the top left\"); the pixel analyser reads colour, shape and position back. "
            f"The analyser reads clean renders {c['analyser_on_clean_renders']:.2f} right; the tokenizer's reconstructions "
            f"{c['tokenizer_reconstructions']['all']:.2f}. {c['combinations']['held out']} of "
            f"{sum(c['combinations'].values())} combinations were held out of training.",
            "",
            "| condition | guidance | plausibility | combinations | colour | shape | position | all three |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in c["generated"]:
            for name in ("seen", "held out"):
                a = row[name]
                lines.append(f"| {row.get('condition', 'caption')} | {row['guidance']} | {row['plausibility']} | {name} | "
                             f"{a['colour']:.2f} | {a['shape']:.2f} | {a['position']:.2f} | {a['all']:.2f} |")
    return "\n".join(lines) + "\n"


def evaluate_and_save(
    name: str, data_dir: str | Path, shapes_name: str | None = "shapes", out: str | Path | None = None,
    settings: ReportSettings = ReportSettings(),
) -> tuple[dict[str, Any], str]:
    """Load, evaluate and write ``evaluation.md`` + ``evaluation.json`` (default: into the generator's folder)."""
    folder = resolve_folder(name)
    generator = Generator.load(folder)
    model = EmbeddingModel.load(generator.encoder_model_id)
    shapes_generator = Generator.load(shapes_name) if shapes_name else None
    metrics = evaluate_generator(generator, model, load_generator_data(data_dir), shapes_generator, settings, str(name))
    markdown = render_markdown(metrics)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "evaluation.json", (json.dumps(metrics, indent=2) + "\n").encode())
    write_bytes_atomic(out / "evaluation.md", markdown.encode())
    return metrics, markdown
