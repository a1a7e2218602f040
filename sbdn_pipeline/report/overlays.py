"""Blur overlays: the photo with its blurred pixels tinted red and its blurred regions boxed.

Pure functions on numpy arrays, shared by the detect job (``--overlays DIR``) and the HTML
report (which renders overlays on the fly when no overlay file exists).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping

import numpy as np

from sbdn_pipeline import schemas

OVERLAY_SUFFIX = ".jpg"
# Red tint for blurred pixels, blended at TINT_ALPHA so the photo stays recognisable.
TINT_RGB = (230, 25, 25)
TINT_ALPHA = 0.5
# Yellow boxes: they stand out against the red tint and against most photos.
BOX_RGB = (255, 214, 0)
DEFAULT_JPEG_QUALITY = 85

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def upsample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stretch a low-resolution confidence mask over height x width pixels (nearest cell).

    Each image pixel takes the mask cell its centre falls in. Nearest, not bilinear, so the
    tinted pixels are exactly the cells that ``blur_area_fraction`` and ``blur_regions``
    were computed from: the overlay never disagrees with the numbers in the table.
    """
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"expected a non-empty 2-D mask, got shape {mask.shape}")
    mask_height, mask_width = mask.shape
    rows = np.minimum(((np.arange(height) + 0.5) * mask_height / height).astype(np.int64),
                      mask_height - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * mask_width / width).astype(np.int64),
                      mask_width - 1)
    return mask[rows[:, None], cols[None, :]]


def scale_box(
    region: Mapping[str, int],
    image_size: tuple[int, int],
    pixels_size: tuple[int, int],
) -> tuple[int, int, int, int]:
    """A region box in original pixels -> the same box in a resized copy of the image.

    Args:
        region: mapping with x_min, y_min, x_max, y_max (max exclusive), original pixels.
        image_size: (width, height) of the original image.
        pixels_size: (width, height) of the pixels the box is drawn on.

    Returns:
        (x0, y0, x1, y1) in the resized pixels, max exclusive, clamped to the image, never empty.
    """
    orig_w, orig_h = image_size
    width, height = pixels_size
    sx, sy = width / orig_w, height / orig_h
    x0 = min(width - 1, max(0, math.floor(region[schemas.REGION_X_MIN] * sx)))
    y0 = min(height - 1, max(0, math.floor(region[schemas.REGION_Y_MIN] * sy)))
    x1 = max(x0 + 1, min(width, math.ceil(region[schemas.REGION_X_MAX] * sx)))
    y1 = max(y0 + 1, min(height, math.ceil(region[schemas.REGION_Y_MAX] * sy)))
    return x0, y0, x1, y1


def box_thickness(height: int, width: int) -> int:
    """Line width of region boxes: visible on thumbnails and on full-size photos alike."""
    return max(1, round(min(height, width) / 160))


def render_overlay(
    pixels: np.ndarray,
    mask: np.ndarray,
    regions: Iterable[Mapping[str, int]],
    mask_threshold: float,
    *,
    image_size: tuple[int, int] | None = None,
    tint_alpha: float = TINT_ALPHA,
) -> np.ndarray:
    """The photo with blurred pixels tinted red and blurred regions boxed.

    Args:
        pixels: (H, W, 3) uint8 RGB photo (after EXIF orientation), at any resolution.
        mask: (h, w) float confidences in [0, 1] covering the whole image at a lower
            resolution (the results table's ``mask_png`` decoded with
            ``sbdn_pipeline.masks.decode_mask_png``).
        regions: boxes with x_min, y_min, x_max, y_max in original pixels, max exclusive
            (the results table's ``blur_regions``).
        mask_threshold: a pixel is tinted when its upsampled confidence is >= this.
        image_size: (width, height) of the original image the boxes refer to. Default: the
            size of ``pixels`` (pass it when ``pixels`` is a downscaled copy).
        tint_alpha: how strongly blurred pixels are tinted (0 = not at all, 1 = solid red).

    Returns:
        A new (H, W, 3) uint8 array; pixels outside the mask and off the boxes are unchanged.

    Raises:
        ValueError: on arrays of the wrong shape or type.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    image_size = image_size or (width, height)
    blurred = upsample_mask(mask, height, width) >= mask_threshold

    out = pixels.copy()
    tint = np.asarray(TINT_RGB, dtype=np.float32)
    mixed = pixels[blurred].astype(np.float32) * (1.0 - tint_alpha) + tint * tint_alpha
    out[blurred] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)

    thickness = box_thickness(height, width)
    for region in regions:
        x0, y0, x1, y1 = scale_box(region, image_size, (width, height))
        # Drawn inside the box, so a box touching the image border stays fully visible.
        t = min(thickness, (x1 - x0 + 1) // 2, (y1 - y0 + 1) // 2) or 1
        out[y0:y0 + t, x0:x1] = BOX_RGB
        out[y1 - t:y1, x0:x1] = BOX_RGB
        out[y0:y1, x0:x0 + t] = BOX_RGB
        out[y0:y1, x1 - t:x1] = BOX_RGB
    return out


def encode_overlay_jpeg(pixels: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """JPEG bytes of an overlay (or any RGB uint8 image).

    Chroma is not subsampled: 4:2:0 would smear the thin red and yellow edges.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="RGB").save(
        buffer, format="JPEG", quality=quality, subsampling=0, optimize=True
    )
    return buffer.getvalue()


def overlay_name(image_sha256: str) -> str:
    """File name of an image's overlay: ``<sha256>.jpg``.

    Derived from the image's content hash only, never from its path, so input paths (which may
    be private or hostile, e.g. ``../../x``) never reach the overlay folder, identical files share
    one overlay, and a re-run finds the overlay of an unchanged image under the same name.

    Raises:
        ValueError: when the argument is not a lowercase hex sha256 digest.
    """
    if not isinstance(image_sha256, str) or not _SHA256_HEX.match(image_sha256):
        raise ValueError(f"expected a lowercase hex sha256 digest, got {image_sha256!r}")
    return image_sha256 + OVERLAY_SUFFIX
