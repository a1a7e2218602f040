"""Decoding and validation of single images (no Beam)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sbdn_pipeline import images
from tests import imagegen


def _rgb(height: int = 60, width: int = 80) -> np.ndarray:
    return imagegen.sharp_image(height, width, seed=1)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"])
def test_supported_formats_decode_to_rgb8_at_original_size(image_format: str) -> None:
    data = imagegen.encode(_rgb(), image_format)
    decoded = images.decode_image(data)
    assert decoded.format == image_format
    assert (decoded.width, decoded.height) == (80, 60)
    assert decoded.pixels.shape == (60, 80, 3) and decoded.pixels.dtype == np.uint8


def test_lossless_png_pixels_are_exact() -> None:
    pixels = _rgb()
    assert np.array_equal(images.decode_image(imagegen.encode(pixels, "PNG")).pixels, pixels)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_grey_alpha_palette_cmyk_and_16_bit_become_rgb8(mode: str) -> None:
    source = Image.fromarray(_rgb())
    if mode == "I;16":
        converted = Image.fromarray((np.asarray(source.convert("L"), np.uint16) * 257))
    else:
        converted = source.convert(mode)
    buffer = io.BytesIO()
    converted.save(buffer, format="JPEG" if mode == "CMYK" else "PNG")
    decoded = images.decode_image(buffer.getvalue())
    assert decoded.pixels.shape == (60, 80, 3) and decoded.pixels.dtype == np.uint8
    # Content survives the conversion: the decoded grey level follows the source's.
    grey_source = np.asarray(source.convert("L"), np.float32)
    grey_decoded = decoded.pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.corrcoef(grey_source.ravel(), grey_decoded.ravel())[0, 1] > 0.9


def test_animated_gif_gives_its_first_frame() -> None:
    first, second = np.zeros((40, 40, 3), np.uint8), np.full((40, 40, 3), 255, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(first).save(buffer, "GIF", save_all=True,
                                append_images=[Image.fromarray(second)])
    assert images.decode_image(buffer.getvalue()).pixels.max() == 0


@pytest.mark.parametrize("orientation, expected_shape", [(1, (60, 80)), (3, (60, 80)),
                                                         (6, (80, 60)), (8, (80, 60))])
def test_exif_orientation_is_applied(orientation: int, expected_shape: tuple[int, int]) -> None:
    pixels = np.zeros((60, 80, 3), np.uint8)
    pixels[:10, :10] = 255  # a white marker in the top-left corner of the stored pixels
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    decoded = images.decode_image(buffer.getvalue())
    assert (decoded.height, decoded.width) == expected_shape
    assert decoded.pixels.shape[:2] == expected_shape
    corners = {"top_left": decoded.pixels[:10, :10], "top_right": decoded.pixels[:10, -10:],
               "bottom_left": decoded.pixels[-10:, :10], "bottom_right": decoded.pixels[-10:, -10:]}
    brightest = max(corners, key=lambda name: corners[name].mean())
    # Orientation 6 means "rotate 90 degrees clockwise to view": top-left goes top-right.
    assert brightest == {1: "top_left", 3: "bottom_right", 6: "top_right", 8: "bottom_left"}[
        orientation]


def test_large_jpeg_is_decoded_with_dct_downscale_but_reports_original_size() -> None:
    data = imagegen.encode(imagegen.sharp_image(800, 1200, 3), "JPEG")
    decoded = images.decode_image(data, target_long_side=256)
    assert (decoded.width, decoded.height) == (1200, 800)
    assert decoded.pixels.shape == (200, 300, 3)  # ratio 4: long side 300 >= 256


@pytest.mark.parametrize(
    "data, error_type",
    [
        (b"", "empty_file"),
        (b"<!DOCTYPE html><html>404</html>", "not_an_image"),
        (b"%PDF-1.7 not an image", "not_an_image"),
        (imagegen.png_header_only(50_000, 50_000), "too_many_pixels"),
        (imagegen.encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "image_too_small"),
        (imagegen.encode(np.zeros((20, 1000, 3), np.uint8), "PNG"), "aspect_ratio_out_of_range"),
        (imagegen.encode(_rgb(), "JPEG")[:3000], "decode_error"),
        (imagegen.encode(_rgb(), "PNG")[:200], "decode_error"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt_header"),
    ],
    ids=["empty", "html", "pdf", "bomb", "1x1", "aspect", "truncated-jpeg", "truncated-png",
         "broken-header"],
)
def test_bad_input_raises_image_error_with_reason(data: bytes, error_type: str) -> None:
    with pytest.raises(images.ImageError) as caught:
        images.decode_image(data)
    assert caught.value.error_type == error_type
    assert caught.value.message


def test_pixel_limit_is_checked_on_the_header_before_decoding() -> None:
    # A 10,000 x 10,000 PNG header with almost no data: decoding it would fail or take long;
    # the limit must reject it from the header alone.
    with pytest.raises(images.ImageError, match="exceeds the limit"):
        images.decode_image(imagegen.png_header_only(10_000, 10_000), max_pixels=1_000_000)


def test_scans_are_counted_on_the_markers() -> None:
    assert images.count_jpeg_scans(imagegen.encode(_rgb(), "JPEG")) == 1
    progressive = imagegen.progressive_jpeg(_rgb())
    assert 6 <= images.count_jpeg_scans(progressive) <= 12
    assert images.count_jpeg_scans(imagegen.progressive_jpeg(_rgb(), 500)) == (
        images.count_jpeg_scans(progressive) + 500)


def test_progressive_jpeg_with_thousands_of_scans_is_rejected_before_decoding() -> None:
    # 2.6 MP x 3,000 scans: over the default budget (32 scans at 100 MP), and slow to decode.
    flat = np.full((1600, 1600, 3), 128, np.uint8)
    data = imagegen.progressive_jpeg(flat, 3000)
    assert len(data) < 100_000
    with pytest.raises(images.ImageError) as caught:
        images.decode_image(data)
    assert caught.value.error_type == "too_many_scans"
    assert "3,0" in caught.value.message


def test_normal_progressive_jpegs_pass_the_scan_budget() -> None:
    decoded = images.decode_image(imagegen.progressive_jpeg(_rgb()))
    assert (decoded.width, decoded.height) == (80, 60)
    # A 100 MP progressive JPEG with 20 scans is within the default budget.
    images._check_scan_budget(b"\xff\xd8" + b"\xff\xda\x00\x02" * 20, 10_000, 10_000,
                              images.defaults.DEFAULT_MAX_JPEG_SCAN_PIXELS)
    # The budget is an option: a tighter one rejects even a normal one.
    with pytest.raises(images.ImageError, match="scans"):
        images.decode_image(imagegen.progressive_jpeg(_rgb()), max_jpeg_scan_pixels=80 * 60)


@pytest.mark.parametrize("data, name", [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(32), "HEIC"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + bytes(32), "AVIF"),
    (b"\xff\x0a" + bytes(32), "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(32), "JPEG 2000"),
    (b"8BPS\x00\x01" + bytes(32), "PSD"),
], ids=["heic", "avif", "jxl", "jp2", "psd"])
def test_known_but_unsupported_formats_are_named(data: bytes, name: str) -> None:
    with pytest.raises(images.ImageError) as caught:
        images.decode_image(data)
    assert caught.value.error_type == "unsupported_format"
    assert name in caught.value.message
