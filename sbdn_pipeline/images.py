"""Bytes -> validated RGB8 pixels, or a clear reason why not.

Decoding is by TensorFlow (JPEG, PNG, GIF first frame, BMP) and tensorflow-io (WebP, TIFF, kept
behind :mod:`sbdn_pipeline.tfio_codecs`). Pillow only reads headers: format, size and EXIF
orientation, so limits are enforced *before* any pixel is decoded (decompression bombs).
"""

from __future__ import annotations

import dataclasses
import io
import re
import warnings
from collections.abc import Callable

import numpy as np

from sbdn_pipeline import options as defaults

# Magic numbers of the formats we decode. Anything else is rejected without decoding.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
# Image formats we recognise but do not decode: named, so the error says what to do.
_UNSUPPORTED: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftypheic", "HEIC"), (4, b"ftypheix", "HEIC"), (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"), (4, b"ftypavis", "AVIF"),
    (0, b"\xff\x0a", "JPEG XL"), (0, b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"8BPS", "Photoshop PSD"), (0, b"\x00\x00\x01\x00", "Windows icon (ICO)"),
)
_TEXT_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"{", b"[")

# EXIF orientation tag and the numpy operations that undo each orientation value.
_EXIF_ORIENTATION_TAG = 0x0112


class ImageError(Exception):
    """An image that cannot be processed; ``error_type`` is a short machine-readable reason."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclasses.dataclass
class DecodedImage:
    """Pixels ready for the models plus what the results table reports about the original.

    Attributes:
        pixels: RGB uint8 array (h, w, 3), EXIF orientation applied. May be smaller than the
            original when it was decoded with a DCT-domain downscale; aspect ratio is kept.
        width: width of the original image (after EXIF orientation), in pixels.
        height: height of the original image (after EXIF orientation), in pixels.
        format: container format, e.g. "JPEG", "PNG".
    """

    pixels: np.ndarray
    width: int
    height: int
    format: str


def sniff_format(data: bytes) -> str | None:
    """The image format from the file's magic number, or None when it is not one we decode."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def unsupported_format(data: bytes) -> str | None:
    """The name of an image format we recognise but do not decode (HEIC, AVIF, ...), or None."""
    for offset, signature, name in _UNSUPPORTED:
        if data[offset:offset + len(signature)] == signature:
            return name
    return None


def count_jpeg_scans(data: bytes) -> int:
    """Number of scans (SOS markers) of a JPEG: 1 for baseline, about 10 for progressive.

    The header segments are skipped by their lengths up to the first scan; after it, SOS
    markers are counted (entropy-coded data never holds FF DA: a data FF is followed by 00).
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return 0  # broken header: the decoder reports it
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:
            return 1 + data.count(b"\xff\xda", pos + 2)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return 0


def _check_scan_budget(data: bytes, width: int, height: int, max_scan_pixels: int) -> None:
    scans = count_jpeg_scans(data)
    if scans > 1 and width * height * scans > max_scan_pixels:
        raise ImageError(
            "too_many_scans",
            f"progressive JPEG of {width}x{height} with {scans:,} scans: decoding would pass "
            f"over {width * height * scans:,} pixels, more than the limit of "
            f"{max_scan_pixels:,} (normal files have about 10 scans)",
        )


def _describe_non_image(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if any(head.startswith(prefix) for prefix in _TEXT_PREFIXES):
        return "content is text/HTML, not an image (e.g. an error page saved with an image name)"
    return f"unrecognised content (first bytes {data[:8].hex()}); not JPEG/PNG/GIF/BMP/WebP/TIFF"


def _read_header(data: bytes, image_format: str) -> tuple[int, int, int]:
    """(width, height, exif_orientation) from the header alone; no pixels are decoded."""
    from PIL import Image

    # Pillow's own bomb guard would raise before we can report our limit: we check ourselves.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                orientation = 1
                if image_format in ("JPEG", "WEBP", "TIFF", "PNG"):
                    try:
                        orientation = int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
                    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject the image
                        orientation = 1
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken headers
        raise ImageError("corrupt_header", f"cannot read {image_format} header: {exc}") from exc
    return width, height, orientation if 1 <= orientation <= 8 else 1


def apply_exif_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip pixels so they appear as the camera meant (EXIF orientation 1-8)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1, :]
    if orientation == 5:
        return np.transpose(pixels, (1, 0, 2))
    if orientation == 6:
        return np.rot90(pixels, k=-1)
    if orientation == 7:
        return np.rot90(np.transpose(pixels, (1, 0, 2)), k=2)
    if orientation == 8:
        return np.rot90(pixels, k=1)
    return pixels


def jpeg_downscale_ratio(width: int, height: int, target_long_side: int | None) -> int:
    """Largest DCT-domain downscale (1, 2, 4, 8) that keeps the long side >= target."""
    if not target_long_side:
        return 1
    long_side = max(width, height)
    for ratio in (8, 4, 2):
        if long_side // ratio >= target_long_side:
            return ratio
    return 1


def _first_gif_frame(data: bytes) -> np.ndarray:
    """First frame of a GIF, decoded alone.

    TensorFlow's GIF decoder decodes every frame before returning the first, so a GIF with
    thousands of frames could exhaust memory; Pillow decodes frames lazily.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _decode_pixels(data: bytes, image_format: str, jpeg_ratio: int) -> np.ndarray:
    import tensorflow as tf

    if image_format == "JPEG":
        tensor = tf.io.decode_jpeg(data, channels=3, ratio=jpeg_ratio)
    elif image_format == "GIF":
        return _first_gif_frame(data)
    elif image_format in ("PNG", "BMP"):
        # dtype=uint8 rescales 16-bit PNGs; channels=3 turns grey/palette/alpha into RGB.
        tensor = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    else:
        from sbdn_pipeline import tfio_codecs

        tensor = tfio_codecs.decode(data, image_format)
    return tensor.numpy()


def _short_tf_message(exc: Exception) -> str:
    """TF errors start with a '{{function_node ...}}' preamble and end with '[Op:...]'."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^\{\{.*?\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\].*$", "", text)
    return text or type(exc).__name__


def identify_format(data: bytes) -> str:
    """The image format of a file's bytes, from its signature (never from its name).

    Raises:
        ImageError: empty, a known but unsupported image format, or not an image at all.
    """
    if not data:
        raise ImageError("empty_file", "file is empty (0 bytes)")
    image_format = sniff_format(data)
    if image_format is None and unsupported_format(data):
        raise ImageError("unsupported_format", f"{unsupported_format(data)} images are not "
                         "supported; convert them to JPEG, PNG, WebP or TIFF")
    if image_format is None:
        raise ImageError("not_an_image", _describe_non_image(data))
    return image_format


def check_dimensions(width: int, height: int, *, max_pixels: int, min_side: int,
                     max_aspect_ratio: float) -> None:
    """Refuse, from the header alone, images too large, too small or too elongated.

    Raises:
        ImageError: ``too_many_pixels``, ``image_too_small`` or ``aspect_ratio_out_of_range``.
    """
    if width * height > max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}",
        )
    if min(width, height) < min_side:
        raise ImageError(
            "image_too_small", f"{width}x{height} is smaller than {min_side} px on a side"
        )
    if max(width, height) / min(width, height) > max_aspect_ratio:
        raise ImageError(
            "aspect_ratio_out_of_range",
            f"{width}x{height} is more elongated than {max_aspect_ratio:g}:1",
        )


def decode_image(
    data: bytes,
    *,
    max_pixels: int = defaults.DEFAULT_MAX_PIXELS,
    min_side: int = defaults.DEFAULT_MIN_SIDE,
    max_aspect_ratio: float = defaults.DEFAULT_MAX_ASPECT_RATIO,
    max_jpeg_scan_pixels: int = defaults.DEFAULT_MAX_JPEG_SCAN_PIXELS,
    target_long_side: int | None = None,
    jpeg_ratio: Callable[[int, int], int] | None = None,
) -> DecodedImage:
    """Decode and validate one image.

    Args:
        data: the file's bytes.
        max_pixels: reject images with more pixels than this, checked on the header.
        min_side: reject images whose short side is smaller.
        max_aspect_ratio: reject images more elongated than this.
        max_jpeg_scan_pixels: reject JPEGs whose pixels x scans exceed this (decode time
            grows with both), counted on the markers before decoding.
        target_long_side: the largest size any model needs; JPEGs much larger than this are
            decoded with a DCT-domain downscale (cheaper, and the models never see more).
        jpeg_ratio: instead of target_long_side, chooses the DCT-domain downscale (1, 2, 4
            or 8) of a JPEG from its (height, width) after EXIF orientation.

    Returns:
        The decoded image.

    Raises:
        ImageError: with a short ``error_type`` and a human-readable message.
    """
    image_format = identify_format(data)
    width, height, orientation = _read_header(data, image_format)
    check_dimensions(width, height, max_pixels=max_pixels, min_side=min_side,
                     max_aspect_ratio=max_aspect_ratio)
    if image_format == "JPEG":
        _check_scan_budget(data, width, height, max_jpeg_scan_pixels)
    ratio = 1
    if image_format == "JPEG" and jpeg_ratio is not None:
        oriented = (width, height) if orientation in (5, 6, 7, 8) else (height, width)
        ratio = jpeg_ratio(*oriented)
    elif image_format == "JPEG":
        ratio = jpeg_downscale_ratio(width, height, target_long_side)
    try:
        pixels = _decode_pixels(data, image_format, ratio)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - TF raises InvalidArgumentError and friends
        raise ImageError(
            "decode_error", f"cannot decode {image_format}: {_short_tf_message(exc)}"
        ) from exc
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.size == 0:
        raise ImageError("decode_error", f"decoder returned unexpected shape {pixels.shape}")
    pixels = np.ascontiguousarray(apply_exif_orientation(pixels, orientation))
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(pixels=pixels, width=width, height=height, format=image_format)
