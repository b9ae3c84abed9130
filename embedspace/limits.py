"""Input limits: how large, how long and how odd an image or audio input may be.

Every image and audio input is checked against one :class:`InputLimits` where it is
decoded (:func:`embedspace.models.model.load_image`,
:func:`embedspace.models.audio.decode_audio`). Inputs beyond a *refusal* limit raise
``ImageDecodeError`` / ``AudioDecodeError`` naming the input and the limit; inputs
beyond a *reduction* limit are still embedded, from a bounded part, and the decoder
reports it so a Space can note it in the item's metadata. The limits exist because a
tiny file can otherwise ask for gigabytes: a 141-byte PNG declaring 20000×1 pixels
(resized so its short side is 224), or a 40 kB WAV declaring 1 Hz (resampled to 16 kHz).

Images
    ``max_image_pixels`` (default 100,000,000 = 100 Mpx): a file whose header declares
        more pixels (width × height) is refused before any pixel is decoded. Pillow
        itself refuses above 2 × ``PIL.Image.MAX_IMAGE_PIXELS`` (about 179 Mpx) whatever
        this says; its warning between 89 and 179 Mpx is replaced by this check.
        In-memory PIL images are already decoded and are not checked against it.
    ``decode_max_pixels`` (default 4,194,304 = 2048 × 2048): a larger image is
        decoded at reduced size (JPEG: 1/2, 1/4 or 1/8 scale inside the decoder; other
        formats: decoded, then reduced) and resized to at most this many pixels,
        keeping its aspect ratio. The model looks at a 224-pixel crop, so this loses
        nothing it uses. The original ``(width, height)`` is kept in
        ``image.info["embedspace_downscaled_from"]``.
    ``max_aspect_ratio`` (default 100): an image whose long side is more than this
        many times its short side is refused (a 20000×1 strip would be resized to
        4,480,000×224 before the centre crop).
    ``image_formats`` (default PNG, JPEG, GIF, WEBP, BMP, TIFF): the only
        decoders Pillow may use for a file (JPEG includes the multi-picture files some
        cameras write); others (EPS runs Ghostscript, for one) are refused as "not a
        readable image".

Audio
    ``max_audio_seconds_read`` (default 30.0): at most this many seconds from the
        start of a file or array are read; longer inputs are reported as truncated.
        The audio tower itself embeds only its ``max_seconds`` (3 s for emoji-mini),
        and asks for no more.
    ``min_sample_rate`` (default 1,000 Hz) and ``max_sample_rate`` (default
        768,000 Hz): rates outside are refused before any resampling.
    ``max_channels`` (default 32): more channels are refused; fewer are averaged
        to mono.

Samples whose peak exceeds 1.0 (float files can hold any value; one at 1e19 once
produced a NaN vector) are divided by their peak; NaN or infinite samples are refused.
The worst case of the audio limits is ``max_audio_seconds_read × max_sample_rate × 8``
bytes (184 MB) for the mono float64 window; a 48 kHz file needs 11.5 MB.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputLimits:
    """Refusal and reduction limits for decoded inputs (see the module docstring for each)."""

    max_image_pixels: int = 100_000_000
    decode_max_pixels: int = 2048 * 2048
    max_aspect_ratio: float = 100.0
    image_formats: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
    max_audio_seconds_read: float = 30.0
    min_sample_rate: int = 1_000
    max_sample_rate: int = 768_000
    max_channels: int = 32

    def __post_init__(self) -> None:
        checks = {
            "max_image_pixels": self.max_image_pixels >= 1,
            "decode_max_pixels": self.decode_max_pixels >= 1,
            "max_aspect_ratio": self.max_aspect_ratio >= 1,
            "max_audio_seconds_read": self.max_audio_seconds_read > 0,
            "min_sample_rate": 1 <= self.min_sample_rate <= self.max_sample_rate,
            "max_channels": self.max_channels >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"InputLimits.{name}={getattr(self, name)!r} is out of range; see embedspace.limits for allowed values")


#: The limits every decoder uses unless given others.
DEFAULT_LIMITS = InputLimits()
