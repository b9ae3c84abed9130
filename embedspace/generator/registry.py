"""Which generator an encoder model uses when none is named: a table from model id to a shipped generator.

``Space.generate(query)`` and ``embedspace generate`` without ``--generator`` use the
generator the space records (:meth:`embedspace.Space.set_generator`), else
:func:`default_generator` of the space's model. A model without an entry has no default;
train one for the space (``embedspace train generator --space``) or name a folder.
"""

from __future__ import annotations

from embedspace.errors import SpaceError

#: Encoder model id -> name of the generator shipped in ``embedspace/generator/pretrained/``.
DEFAULT_GENERATORS: dict[str, str] = {"emoji-mini": "emoji-mini"}


def default_generator(model_id: str) -> str:
    """The name of the generator registered for encoder model ``model_id``.

    Raises:
        SpaceError: no generator is registered for it; the message says how to get one.
    """
    name = DEFAULT_GENERATORS.get(model_id)
    if name is None:
        registered = ", ".join(f"{model} ({generator})" for model, generator in sorted(DEFAULT_GENERATORS.items()))
        raise SpaceError(
            f"model {model_id!r} has no registered generator (models with one: {registered}); "
            f"train one on a space's images with `embedspace train generator --space SPACE --out G` (it records G "
            f"in the space), or pass generator=G (CLI: --generator G)"
        )
    return name
