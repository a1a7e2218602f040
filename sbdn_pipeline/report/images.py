"""Pictures for the report: thumbnails, overlays found on disk or rendered on the fly.

Every image shown in the gallery comes from the first of these that works:

1. the overlay file named in the row's ``overlay_uri`` (written by ``sbdn detect --overlays``);
2. ``<overlays dir>/<image_sha256>.jpg`` when the report is given ``--overlays DIR``;
3. an overlay rendered now from the original image and the row's mask, when the image is
   readable and still has the hash recorded in the row;
4. the mask alone, drawn on a neutral canvas of the image's shape.

Images are read with Beam's file systems (local, gs://, s3://) and decoded with Pillow for
display only; a picture that cannot be produced never stops the report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems

from sbdn_pipeline import inputs, masks, schemas
from sbdn_pipeline import options as defaults
from sbdn_pipeline.report import overlays

SOURCE_OVERLAY_FILE = "overlay_file"
SOURCE_OVERLAYS_DIR = "overlays_dir"
SOURCE_RENDERED = "rendered"
SOURCE_MASK_ONLY = "mask_only"
SOURCE_DESCRIPTIONS = {
    SOURCE_OVERLAY_FILE: "overlay written by the detect run",
    SOURCE_OVERLAYS_DIR: "overlay from the overlays folder",
    SOURCE_RENDERED: "overlay rendered from the image",
    SOURCE_MASK_ONLY: "mask only: the image is not readable here",
}
# Light grey canvas for "mask only" pictures: the red tint and yellow boxes stay legible.
MASK_CANVAS_RGB = (214, 218, 224)
THUMBNAIL_QUALITY = 82


class PictureError(Exception):
    """A picture could not be read or decoded (the caller falls back to the next source)."""


@dataclasses.dataclass(frozen=True)
class Picture:
    """A JPEG ready to inline, and where it came from (one of the SOURCE_* values)."""

    jpeg: bytes
    source: str
    note: str = ""


def read_bytes(uri: str, max_bytes: int = defaults.DEFAULT_MAX_FILE_BYTES) -> bytes:
    """All bytes of a local or remote file, at most ``max_bytes``.

    Raises:
        PictureError: missing, unreadable or larger than ``max_bytes``.
    """
    if not inputs.is_remote(uri) and not os.path.isfile(uri):
        raise PictureError(f"not a readable file: {uri}")
    try:
        with FileSystems.open(uri, compression_type="uncompressed") as handle:
            data = handle.read(max_bytes + 1)
    except Exception as exc:  # noqa: BLE001 - any file system error means "not here"
        raise PictureError(f"cannot read {uri}: {exc}") from exc
    if len(data) > max_bytes:
        raise PictureError(f"{uri} is larger than {max_bytes:,} bytes")
    return data


def decode_for_display(data: bytes, long_side: int,
                       max_pixels: int = defaults.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode any Pillow-readable image, EXIF-oriented RGB, long side at most ``long_side``.

    Raises:
        PictureError: not an image, or more than ``max_pixels`` pixels.
    """
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > max_pixels:
                    raise PictureError(f"{image.width}x{image.height} pixels is too many")
                # JPEG: decode at 1/2, 1/4 or 1/8 scale straight from the DCT, far faster.
                image.draft("RGB", (long_side, long_side))
                oriented = ImageOps.exif_transpose(image).convert("RGB")
                oriented.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
                return np.asarray(oriented)
    except PictureError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        raise PictureError(f"cannot decode image: {exc}") from exc


def thumbnail_jpeg(pixels: np.ndarray) -> bytes:
    """JPEG bytes of a thumbnail."""
    return overlays.encode_overlay_jpeg(pixels, quality=THUMBNAIL_QUALITY)


def fitted_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) scaled so the long side is ``long_side`` (aspect ratio kept)."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _overlay_from_file(uri: str, long_side: int, source: str) -> Picture:
    pixels = decode_for_display(read_bytes(uri), long_side)
    return Picture(thumbnail_jpeg(pixels), source)


def gallery_picture(
    row: Mapping[str, Any],
    mask: np.ndarray | None,
    long_side: int,
    overlays_dir: str | None = None,
) -> Picture:
    """The best available overlay picture of one blurry results row.

    Args:
        row: a results row (image_uri, image_sha256, width, height, mask_threshold,
            blur_regions and, when present, overlay_uri).
        mask: its decoded mask, or None when the row has none.
        long_side: long side of the returned picture in pixels.
        overlays_dir: folder holding ``<image_sha256>.jpg`` overlays, if any.

    Returns:
        A Picture; the last resort (mask only) always succeeds.
    """
    if row.get(schemas.OVERLAY_URI):
        try:
            return _overlay_from_file(row[schemas.OVERLAY_URI], long_side, SOURCE_OVERLAY_FILE)
        except PictureError:
            pass
    if overlays_dir:
        try:
            name = overlays.overlay_name(row[schemas.IMAGE_SHA256])
            return _overlay_from_file(FileSystems.join(overlays_dir, name), long_side,
                                      SOURCE_OVERLAYS_DIR)
        except (PictureError, ValueError):
            pass
    regions = row.get(schemas.BLUR_REGIONS) or []
    threshold = float(row[schemas.MASK_THRESHOLD])
    image_size = (int(row[schemas.WIDTH]), int(row[schemas.HEIGHT]))
    note = ""
    try:
        data = read_bytes(row[schemas.IMAGE_URI])
        if hashlib.sha256(data).hexdigest() != row[schemas.IMAGE_SHA256]:
            # Drawing this run's mask on a different picture would mislead.
            raise PictureError("the image changed since it was processed")
        pixels = decode_for_display(data, long_side)
        if mask is None:
            return Picture(thumbnail_jpeg(pixels), SOURCE_RENDERED, "no mask stored")
        rendered = overlays.render_overlay(pixels, mask, regions, threshold,
                                           image_size=image_size)
        return Picture(thumbnail_jpeg(rendered), SOURCE_RENDERED)
    except PictureError as exc:
        note = str(exc)
    width, height = fitted_size(*image_size, long_side)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = MASK_CANVAS_RGB
    if mask is not None:
        canvas = overlays.render_overlay(canvas, mask, regions, threshold,
                                         image_size=image_size, tint_alpha=0.75)
    return Picture(thumbnail_jpeg(canvas), SOURCE_MASK_ONLY, note)


def sharp_picture(uri: str, sha256: str, long_side: int) -> bytes | None:
    """Thumbnail of a sharp image, or None when it cannot be read as it was processed."""
    try:
        data = read_bytes(uri)
        if hashlib.sha256(data).hexdigest() != sha256:
            return None
        return thumbnail_jpeg(decode_for_display(data, long_side))
    except PictureError:
        return None


def decode_results_mask(mask_png: bytes | None) -> np.ndarray | None:
    """The results table's mask_png as float confidences, or None when absent or unreadable.

    ``masks.decode_mask_png`` does the decoding; this adds the report's tolerance (a missing or
    damaged mask only costs the picture its tint).
    """
    if not mask_png:
        return None
    try:
        return masks.decode_mask_png(mask_png)
    except Exception:  # noqa: BLE001 - a damaged mask only costs the picture its tint
        return None


def spread_sample(count: int, size: int) -> Sequence[int]:
    """``size`` indices spread evenly over ``range(count)`` (all of them when fewer)."""
    if count <= size:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, size)})
