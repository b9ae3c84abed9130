"""The dashboard's image generator: named at start, loaded once on first use, checked against the space's model.

Each app owns one :class:`GeneratorSource` (built by ``create_app``); it keeps the loaded
generator for every session of that app, read-only. Nothing is loaded when the app
starts, so a page opens at once and the first generation job pays for the load.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

#: Shown in the page when the app was started without a generator.
NO_GENERATOR = (
    "Generation is off: this dashboard was started without a generator. "
    "Start it with `embedspace serve SPACE --generator emoji-mini` (or a folder written by Generator.save_pretrained)."
)


class GeneratorSource:
    """The generator of one app, loaded on first use and checked against the space's model.

    Args:
        spec: a generator name (e.g. "emoji-mini"), a folder written by
            ``Generator.save_pretrained``, a loaded :class:`embedspace.Generator`, or None (no generation).
        model_id: the space's encoder model id.
    """

    def __init__(self, spec: Any, model_id: str):
        self.spec = spec
        self.model_id = model_id
        self._loaded: Any = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        """Why generation cannot work, as far as a cheap check tells (None: try it; loading may still fail)."""
        from embedspace.generator import Generator, list_pretrained

        if self.spec is None:
            return NO_GENERATOR
        if isinstance(self.spec, Generator) or Path(self.spec).is_dir() or str(self.spec) in list_pretrained():
            return None
        shipped = ", ".join(list_pretrained()) or "none shipped"
        return f"Generation is unavailable: there is no generator folder or named generator {str(self.spec)!r} (named generators: {shipped})."

    def describe(self) -> str:
        """One line for the page: which generator is used, or why there is none."""
        problem = self.problem()
        if problem is not None:
            return problem
        if not isinstance(self.spec, (str, Path)):
            return "generator: loaded by the caller"
        return f"generator: {Path(self.spec).name} (loaded on first use)"  # a name, or a folder's name (not the server's paths)

    def get(self) -> Any:
        """The loaded generator (loaded by the first call; later calls return the same one).

        Raises:
            ValueError: none configured, it cannot be loaded, or it was trained for another model
                (the message says what to do).
        """
        from embedspace.generator import Generator

        if self.spec is None:
            raise ValueError(NO_GENERATOR)
        with self._lock:
            if self._loaded is None:
                if isinstance(self.spec, Generator):
                    self._loaded = self.spec
                else:
                    try:
                        self._loaded = Generator.load(self.spec)
                    except ValueError as error:
                        raise ValueError(f"generation is unavailable: {error}") from None
            generator = self._loaded
        try:
            generator.check_compatible(self.model_id)
        except ValueError as error:
            raise ValueError(f"the generator does not fit this space: {error}") from None
        return generator
