"""Uploaded files decoded by the library's own decoders, with messages that name the file the user chose.

A page uploads bytes and a file name. They are written to a private temporary folder and
decoded exactly as files added to a space are: images by
:func:`embedspace.models.model.load_image`, sounds by
:func:`embedspace.models.audio.decode_audio`, both under the :class:`~embedspace.limits.InputLimits`
given (declared size checked before decoding, bounded audio window, rate and channel
limits). Their errors become :class:`~embedspace.SpaceError` messages that name the
upload by its base name; the server's temporary paths never reach the page.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from PIL import Image

from embedspace import SpaceError
from embedspace.errors import AudioDecodeError, ImageDecodeError
from embedspace.limits import InputLimits
from embedspace.inputs import AUDIO_SUFFIXES, IMAGE_SUFFIXES

if TYPE_CHECKING:
    from embedspace.models.audio import DecodedAudio

Decoded = TypeVar("Decoded")
#: Prefix of the temporary folder an upload is written to while it is decoded.
TEMPORARY_PREFIX = "embedspace-upload-"


def _decode(name: str, payload: bytes, suffixes: frozenset[str], decode: Callable[[Path], Decoded], failure: type[ValueError]) -> Decoded:
    """``decode(file)`` of the payload written to a temporary file.

    Raises:
        SpaceError: ``decode`` raised ``failure``; the library's message (what is wrong and
            what to do), with the temporary file replaced by ``name``.
    """
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix=TEMPORARY_PREFIX) as folder:
        path = Path(folder) / f"payload{suffix if suffix in suffixes else ''}"
        path.write_bytes(payload)
        try:
            return decode(path)
        except failure as error:
            reason = str(error).replace(str(path), name).replace(folder, "upload").replace(path.name, name)
            raise SpaceError(f"{name}: {reason.removeprefix(f'{name}: ')}") from None


def read_image_upload(name: str, payload: bytes, limits: InputLimits) -> Image.Image:
    """The uploaded image ``name`` (a base name) with bytes ``payload``, decoded by ``load_image`` (RGB).

    Raises:
        SpaceError: not an image the decoder can read, or beyond ``limits`` (the message names the file and says what to do).
    """
    from embedspace.models.model import load_image

    return _decode(name, payload, IMAGE_SUFFIXES, lambda path: load_image(path, limits), ImageDecodeError)


def read_audio_upload(name: str, payload: bytes, sample_rate: int, seconds: float, limits: InputLimits) -> DecodedAudio:
    """The uploaded sound ``name`` (a base name) decoded by ``decode_audio`` to mono at ``sample_rate``, at most ``seconds`` long.

    ``samples`` of the result are ``(T,)`` float32 in [-1, 1].

    Raises:
        SpaceError: the name has no audio suffix, or the file is not audio the decoder can read,
            or is beyond ``limits`` (the message names the file and says what to do).
    """
    from embedspace.models.audio import decode_audio

    if Path(name).suffix.lower() not in AUDIO_SUFFIXES:
        raise SpaceError(f"{name} is not an audio file; upload one of {', '.join(sorted(AUDIO_SUFFIXES))}")
    return _decode(name, payload, AUDIO_SUFFIXES, lambda path: decode_audio(path, sample_rate, seconds, limits), AudioDecodeError)
