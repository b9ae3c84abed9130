"""Hostile and odd image and audio inputs: each is refused with a message naming it and the limit, or decoded within bounded memory.

Every file is made here: bomb headers written byte by byte (as in the release-1
reliability review), odd sample rates, long recordings as sparse files (a header that
declares minutes of audio over a hole in the file, so the test writes almost nothing).
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from embedspace.limits import DEFAULT_LIMITS, InputLimits
from embedspace.models import AudioDecodeError, ImageDecodeError
from embedspace.models.audio import decode_audio, load_audio, waveform_batch
from embedspace.models.config import AudioConfig
from embedspace.models.model import DOWNSCALED_FROM_KEY, load_image

# -- hostile files --------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG of a few dozen bytes that declares ``width × height`` 1-bit pixels and holds none."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))
    return path


def write_gif_header(path: Path, width: int, height: int) -> Path:
    """A 29-byte GIF whose screen and only frame declare ``width × height``."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    path.write_bytes(b"GIF89a" + screen + frame + b";")
    return path


def write_jpeg_declaring(path: Path, width: int, height: int) -> Path:
    """A real 16×16 JPEG whose frame header is patched to declare ``width × height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def write_rate_wav(path: Path, rate: int, frames: int = 100_000) -> Path:
    """A 16-bit mono WAV at any rate (the ``wave`` module writes 1 Hz as happily as 16 kHz)."""
    import wave

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(b"\x01\x00" * frames)
    return path


def write_long_wav(path: Path, seconds: float, rate: int, channels: int, subtype: str) -> Path:
    """A WAV declaring ``seconds`` of audio: one second of a 440 Hz tone, then a hole (silence) the file system does not store."""
    t = np.arange(rate) / rate
    tone = np.repeat((0.5 * np.sin(2 * np.pi * 440 * t))[:, None], channels, axis=1).astype(np.float32)
    soundfile.write(path, tone, rate, subtype=subtype, format="WAV")
    data = bytearray(path.read_bytes())
    start = data.index(b"data")
    frame_bytes = channels * {"FLOAT": 4, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4}[subtype]
    size = int(seconds * rate) * frame_bytes
    data[start + 4 : start + 8] = struct.pack("<I", size)
    data[4:8] = struct.pack("<I", start + 8 + size - 8)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.truncate(start + 8 + size)
    return path


def write_tone(path: Path, amplitude: float = 0.5, rate: int = 16_000, seconds: float = 1.0, subtype: str = "FLOAT", channels: int = 1) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    tone = amplitude * np.sin(2 * np.pi * 440 * t)
    samples = np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone
    soundfile.write(path, samples.astype(np.float64 if subtype == "DOUBLE" else np.float32), rate, subtype=subtype)
    return path


# -- images ----------------------------------------------------------------------------------


def test_png_bomb_header_is_refused_naming_the_file_and_limit(tmp_path):
    bomb = write_png_header(tmp_path / "bomb.png", 30_000, 30_000)
    with pytest.raises(ImageDecodeError, match=r"bomb\.png: declares 900,000,000 pixels, above the limit of 100,000,000 \(InputLimits.max_image_pixels\)"):
        load_image(bomb)


def test_gif_of_65535_squared_is_refused(tmp_path):
    gif = write_gif_header(tmp_path / "huge.gif", 65_535, 65_535)
    with pytest.raises(ImageDecodeError, match=r"huge\.gif: declares 4,294,836,225 pixels, above the limit"):
        load_image(gif)


def test_144_megapixel_jpeg_is_refused_from_its_header(tmp_path):
    jpeg = write_jpeg_declaring(tmp_path / "declared.jpg", 12_000, 12_000)
    with pytest.raises(ImageDecodeError, match=r"declared\.jpg: declares 12000×12000 = 144,000,000 pixels.*max_image_pixels"):
        load_image(jpeg)


@pytest.mark.parametrize("width, height", [(20_000, 1), (1, 65_000)])
def test_extreme_strips_are_refused_by_aspect_ratio(tmp_path, width, height):
    strip = write_png_header(tmp_path / "strip.png", width, height)
    with pytest.raises(ImageDecodeError, match=r"strip\.png.*aspect ratio.*limit of 100:1.*crop"):
        load_image(strip)


def test_empty_in_memory_image_is_refused():
    with pytest.raises(ImageDecodeError, match=r"no pixels \(0×0\)"):
        load_image(Image.new("RGB", (0, 0)))


@pytest.mark.parametrize("value, kind", [(None, "NoneType"), (b"\x89PNG", "bytes"), (3, "int"), (np.zeros((4, 4)), "ndarray")])
def test_non_image_values_say_what_to_give(value, kind):
    with pytest.raises(ImageDecodeError, match=rf"^{kind} .* is not an image: give a file path or a PIL\.Image\.Image") as raised:
        load_image(value)
    assert ("io.BytesIO" in str(raised.value)) == (kind == "bytes")


def test_truncated_images_name_the_file(tmp_path):
    full = tmp_path / "full.jpg"
    Image.effect_noise((256, 256), 64).convert("RGB").save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:2000])
    png = tmp_path / "cut.png"
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 64).save(buffer, "PNG")
    png.write_bytes(buffer.getvalue()[:3000])
    for path in (cut, png):
        with pytest.raises(ImageDecodeError, match=rf"{path.name}: not a readable image"):
            load_image(path)


def test_formats_outside_the_list_are_not_decoded(tmp_path):
    eps = tmp_path / "figure.png"  # an EPS file (Pillow would run Ghostscript on it) with an image suffix
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageDecodeError, match=r"figure\.png: not a readable image"):
        load_image(eps)


def test_large_jpeg_is_decoded_at_reduced_size_and_says_so(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (6000, 4000), (10, 120, 200)).save(photo, quality=80)  # 24 Mpx
    image = load_image(photo)
    assert image.width * image.height <= DEFAULT_LIMITS.decode_max_pixels
    assert image.info[DOWNSCALED_FROM_KEY] == (6000, 4000)
    assert abs(image.width / image.height - 1.5) < 0.01
    assert np.abs(np.asarray(image.getpixel((100, 100))) - (10, 120, 200)).max() <= 3


def test_small_images_are_not_marked_as_downscaled(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (64, 48), "red").save(path)
    assert DOWNSCALED_FROM_KEY not in load_image(path).info


def test_large_transparent_png_is_reduced_on_white_and_in_memory_images_stay_unchanged():
    picture = Image.new("RGBA", (3000, 2000), (0, 0, 0, 0))
    picture.info["origin"] = "kept"
    image = load_image(picture)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
    assert image.info[DOWNSCALED_FROM_KEY] == (3000, 2000) and image.info["origin"] == "kept"
    assert picture.size == (3000, 2000) and picture.mode == "RGBA"


def test_limits_are_settings(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (400, 300), "red").save(path)
    with pytest.raises(ImageDecodeError, match=r"plain\.png: declares 400×300 = 120,000 pixels, above the limit of 100,000"):
        load_image(path, InputLimits(max_image_pixels=100_000))
    assert load_image(path, InputLimits(decode_max_pixels=1200)).info[DOWNSCALED_FROM_KEY] == (400, 300)
    with pytest.raises(ValueError, match="InputLimits.min_sample_rate"):
        InputLimits(min_sample_rate=0)


# -- audio -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 7])
def test_odd_low_sample_rates_are_refused_naming_the_file_and_limit(tmp_path, rate):
    path = write_rate_wav(tmp_path / f"slow{rate}.wav", rate)
    with pytest.raises(AudioDecodeError, match=rf"slow{rate}\.wav: sample rate {rate} Hz is outside 1000–768000 Hz"):
        load_audio(path, 16_000)


def test_arrays_at_odd_rates_are_refused_too():
    with pytest.raises(AudioDecodeError, match=r"audio array .* sample rate 1 Hz is outside"):
        load_audio((np.zeros(100_000, np.float32), 1), 16_000)


def test_ten_minute_48k_stereo_float_wav_reads_only_a_window(tmp_path):
    path = write_long_wav(tmp_path / "long.wav", 600, 48_000, 2, "FLOAT")
    decoded = decode_audio(path, 16_000)
    assert decoded.truncated and decoded.duration_seconds == pytest.approx(600)
    assert decoded.seconds == pytest.approx(DEFAULT_LIMITS.max_audio_seconds_read, abs=0.01)
    assert decoded.channels == 2 and decoded.source_rate == 48_000
    assert 0.45 < np.abs(decoded.samples[:16_000]).max() < 0.55  # the tone, resampled
    assert waveform_batch([path], AudioConfig(sample_rate=16_000, max_seconds=3.0)).shape == (1, 48_000)  # the tower reads its 3 s


def test_short_clips_are_not_truncated(tmp_path):
    decoded = decode_audio(write_tone(tmp_path / "tone.wav"), 16_000)
    assert not decoded.truncated and not decoded.normalised and decoded.seconds == pytest.approx(1.0)


def test_huge_amplitude_is_peak_normalised_and_embeds_like_the_quiet_tone(tmp_path, model):
    loud = write_tone(tmp_path / "loud.wav", amplitude=1e19)
    louder = write_tone(tmp_path / "louder.wav", amplitude=1e300, subtype="DOUBLE")
    full = write_tone(tmp_path / "full.wav", amplitude=1.0)
    decoded = decode_audio(loud, 16_000)
    assert decoded.normalised and decoded.peak == pytest.approx(1e19, rel=1e-3)
    vectors = model.embed_audio([loud, louder, full])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[2] > 0.999 and vectors[1] @ vectors[2] > 0.999


def test_nan_samples_are_refused(tmp_path):
    path = tmp_path / "nan.wav"
    soundfile.write(path, np.array([0.1, np.nan, 0.2] * 1000, np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"nan\.wav: contains NaN or infinite samples"):
        load_audio(path, 16_000)


def test_bit_depths_and_channel_counts_embed_alike(tmp_path, model):
    paths = [write_tone(tmp_path / f"{subtype}.wav", subtype=subtype, rate=44_100) for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")]
    paths.append(write_tone(tmp_path / "six.wav", channels=6, rate=48_000))
    vectors = model.embed_audio(paths)
    assert np.isfinite(vectors).all()
    similarity = vectors @ vectors[1]  # to the 16-bit file
    assert similarity[0] > 0.9  # 8 bits add audible quantisation noise
    assert (similarity[1:] > 0.999).all()


def test_too_many_channels_are_refused(tmp_path):
    path = write_tone(tmp_path / "many.wav", channels=40, seconds=0.1)
    with pytest.raises(AudioDecodeError, match=r"many\.wav: has 40 channels; give 1 to 32"):
        load_audio(path, 16_000)


def test_cut_wav_is_read_as_far_as_it_goes_and_a_cut_header_is_refused(tmp_path):
    full = write_tone(tmp_path / "full.wav", seconds=1.0, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:8000])
    assert 0 < load_audio(cut, 16_000).shape[0] < 16_000
    header = tmp_path / "header.wav"
    header.write_bytes(full.read_bytes()[:20])
    with pytest.raises(AudioDecodeError, match=r"header\.wav: not a readable audio file"):
        load_audio(header, 16_000)


def test_array_tuples_are_checked_and_integer_arrays_scaled(model):
    t = np.arange(16_000) / 16_000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    as_int16 = (tone * 32767).astype(np.int16)
    stereo = np.stack([tone, tone], axis=1).astype(np.float32)
    np.testing.assert_allclose(load_audio((as_int16, 16_000), 16_000), tone, atol=1e-4)
    np.testing.assert_allclose(load_audio((stereo, np.int64(16_000)), 16_000), tone, atol=1e-6)
    bad = [
        ((stereo.T, 16_000), r"shape \(2, 16000\).*transpose"),
        ((tone, "16000"), "not a whole number of Hz"),
        ((tone, 16_000.5), "not a whole number of Hz"),
        ((tone, True), "not a whole number of Hz"),
        ((tone > 0, 16_000), "dtype bool"),
        ((tone.astype(complex), 16_000), "dtype complex"),
        ((as_int16.astype(np.int64), 16_000), "dtype int64; give float samples in \\[-1, 1\\] or 8-, 16- or 32-bit integer PCM"),
        (([0.1, [0.2]], 16_000), "not an array"),
        ((np.zeros(0), 16_000), "holds no audio samples"),
        ((tone,), "tuple of 1 items"),
        (b"RIFF", r"bytes .*give a file path or a \(samples, sample_rate\) tuple"),
        (None, "NoneType"),
    ]
    for source, message in bad:
        with pytest.raises(AudioDecodeError, match=message):
            load_audio(source, 16_000)


def test_audio_front_end_gives_finite_unit_vectors_for_any_input_in_range(model):
    rate = 16_000
    n = 3 * rate
    t = np.arange(n) / rate
    signals = {
        "silence": np.zeros(n),
        "dc": np.ones(n),
        "negative dc": -np.ones(n),
        "full-scale square": np.sign(np.sin(2 * np.pi * 440 * t)),
        "nyquist": (-1.0) ** np.arange(n),
        "white noise": np.random.default_rng(0).uniform(-1, 1, n),
        "tiny": np.full(n, 1e-30),
        "one sample": np.ones(1),
    }
    vectors = model.embed_audio([(signal.astype(np.float32), rate) for signal in signals.values()])
    finite = np.isfinite(vectors).all(axis=1)
    assert finite.all(), [name for name, ok in zip(signals, finite) if not ok]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# -- memory ----------------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent(
    """
    import json, re, sys
    from embedspace.models.audio import AudioDecodeError, decode_audio
    from embedspace.models.model import ImageDecodeError, load_image

    def status_mb(key):
        return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

    results = {}
    for kind, path in json.loads(sys.argv[1]):
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets the peak (VmHWM) to the current resident size
        before = status_mb("VmRSS")
        try:
            outcome = "size %s" % (load_image(path).size,) if kind == "image" else "truncated %s" % decode_audio(path, 16000).truncated
        except (ImageDecodeError, AudioDecodeError) as error:
            outcome = "refused: %s" % error
        results[path] = {"outcome": outcome, "peak_growth_mb": status_mb("VmHWM") - before}
    print(json.dumps(results))
    """
)


def test_hostile_inputs_stay_within_bounded_memory(tmp_path):
    """Inputs that once cost 2.4 GB to over 10 GB raise a process's peak resident memory by < 100 MB each (a full decode of the photo alone is 108 MB)."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident size")
    photo = tmp_path / "photo36mpx.jpg"
    Image.new("RGB", (7360, 4912), (10, 120, 200)).save(photo, quality=80)
    cases = [
        ("image", write_png_header(tmp_path / "bomb.png", 30_000, 30_000)),
        ("image", write_gif_header(tmp_path / "huge.gif", 65_535, 65_535)),
        ("image", write_png_header(tmp_path / "wide.png", 20_000, 1)),
        ("image", write_png_header(tmp_path / "tall.png", 1, 65_000)),
        ("image", write_jpeg_declaring(tmp_path / "declared.jpg", 12_000, 12_000)),
        ("image", photo),
        ("audio", write_rate_wav(tmp_path / "slow1.wav", 1)),
        ("audio", write_rate_wav(tmp_path / "slow7.wav", 7)),
        ("audio", write_long_wav(tmp_path / "ten_minutes.wav", 600, 48_000, 2, "FLOAT")),
        ("audio", write_long_wav(tmp_path / "one_hour.wav", 3600, 16_000, 1, "PCM_16")),
    ]
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, json.dumps([(kind, str(path)) for kind, path in cases])],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    results = json.loads(probe.stdout)
    assert results[str(photo)]["outcome"].startswith("size (2506, 1673)")
    assert results[str(tmp_path / "ten_minutes.wav")]["outcome"] == "truncated True"
    refused = ["bomb.png", "huge.gif", "wide.png", "tall.png", "declared.jpg", "slow1.wav", "slow7.wav"]
    assert all(results[str(tmp_path / name)]["outcome"].startswith(f"refused: {tmp_path / name}") for name in refused)
    assert max(result["peak_growth_mb"] for result in results.values()) < 100, json.dumps(results, indent=1)
