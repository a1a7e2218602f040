"""Broken, hostile and odd-but-valid input files, each with the outcome `sbdn detect` must give.

Used by the scale benchmark (``--hostile``) and, through ``tests/imagegen.py``, by the test
suite. The expected verdicts are those of the tiny models of :mod:`benchmarks.tiny_models`.
"""

from __future__ import annotations

import gzip
import io
import os
import pathlib
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.synthetic_images import blurred_image, encode, sharp_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds almost no data (decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def progressive_jpeg(pixels: np.ndarray, extra_scans: int = 0) -> bytes:
    """A progressive JPEG; extra_scans repeats its last scan (slow to decode, still valid).

    A repeated refinement scan is only a libjpeg warning, so the decoder goes through every
    one of them: the shape of the "200 KB file that takes 27 s to decode" of issue 16.
    """
    data = encode(pixels, "JPEG", progressive=True, quality=90)
    last_scan = data[data.rfind(b"\xff\xda"):-2]  # FF DA never occurs inside scan data
    return data[:-2] + last_scan * extra_scans + b"\xff\xd9"


def _save(image: Image.Image, image_format: str, **args: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **args)
    return buffer.getvalue()


# Hostile entries whose failure the test must simulate (the suite runs as root, on file
# systems that clamp mtimes): see tests/beam_jobs/test_detect_hostile.py.
HOSTILE_LOCKED_FOLDER = "locked"  # os.scandir fails on it (permission denied)
HOSTILE_VANISHES = "vanishes.jpg"  # deleted between listing and reading
HOSTILE_EMPTIED = "emptied.jpg"  # truncated to 0 bytes between listing and reading
HOSTILE_FAR_FUTURE = "far_future_mtime.png"  # mtime in year 14645
FAR_FUTURE_MTIME_NS = 400_000_000_000 * 10**9
# The run's output, inside the input folder, named through a symlink to a folder of it.
HOSTILE_OUTPUT = os.path.join("link_to_out", "out")


def _more_hostile_payloads(sharp: Image.Image, blurred: Image.Image
                           ) -> dict[str, tuple[str, object, bytes]]:
    """Hostile and odd files added by issue 16 (name: (table, outcome, bytes))."""
    jpeg, png = _save(sharp, "JPEG", quality=95), _save(sharp, "PNG")
    pages = io.BytesIO()
    sharp.save(pages, "TIFF", save_all=True, append_images=[blurred])
    big_exif = sharp.getexif()
    big_exif[0x010E] = "x" * 60_000  # ImageDescription: an APP1 segment near its 64 KB limit
    zero_width = png_header_only(0, 96)
    flat = np.full((1600, 1600, 3), 128, np.uint8)
    return {
        "many_scans.jpg": ("errors", "too_many_scans", progressive_jpeg(flat, 3000)),
        "progressive.jpg": ("results", False, progressive_jpeg(np.asarray(sharp))),
        "photo.heic": ("errors", "unsupported_format",
                       b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)),
        "photo.avif": ("errors", "unsupported_format",
                       b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + bytes(64)),
        "layers.psd": ("errors", "unsupported_format", b"8BPS\x00\x01" + bytes(64)),
        "garbage_after_eoi.jpg": ("results", False, jpeg + bytes(range(256)) * 8),
        "trailing_garbage.png": ("results", False, png + b"\xde\xad" * 500),
        "multipage.tiff": ("results", False, pages.getvalue()),
        "truncated.tiff": ("errors", "decode_error", _save(sharp, "TIFF")[:300]),
        "cmyk.tiff": ("results", False, _save(sharp.convert("CMYK"), "TIFF")),
        "huge_exif.jpg": ("results", False, _save(sharp, "JPEG", quality=95,
                                                  exif=big_exif.tobytes())),
        "really_a_png.jpg": ("results", False, png),
        "zero_width.png": ("errors", "corrupt_header", zero_width),
        "grey.jpg": ("results", False, _save(sharp.convert("L"), "JPEG", quality=98)),
        "gzipped.jpg": ("errors", "not_an_image", gzip.compress(jpeg, mtime=0)),  # reproducible bytes
        "x" * 240 + ".png": ("results", False, png),  # near NAME_MAX (255 bytes)
        HOSTILE_VANISHES: ("errors", "unreadable", jpeg),
        HOSTILE_EMPTIED: ("errors", "empty_file", jpeg),
        HOSTILE_FAR_FUTURE: ("results", False, png),
        "pre_epoch_mtime.png": ("results", False, png),
    }


def _write_hostile_tree(folder: Any, expected: dict[str, tuple[str, object, Any]]) -> None:
    """Folders, links and mtimes: entries that are more than bytes in a file."""
    os.utime(folder / HOSTILE_FAR_FUTURE, ns=(0, FAR_FUTURE_MTIME_NS))  # ext4 clamps: 2446
    os.utime(folder / "pre_epoch_mtime.png", ns=(0, -2_000_000_000 * 10**9))  # 1906
    png = (folder / "really_a_png.jpg").read_bytes()
    (folder / "image_dir.jpg").mkdir()  # a folder named like an image is walked, not read
    (folder / "image_dir.jpg" / "inside.png").write_bytes(png)
    expected["inside.png"] = ("results", False, None)
    (folder / HOSTILE_LOCKED_FOLDER).mkdir()
    (folder / HOSTILE_LOCKED_FOLDER / "behind_the_lock.png").write_bytes(b"never listed")
    expected[HOSTILE_LOCKED_FOLDER] = ("errors", "unreadable_folder", None)
    expected["behind_the_lock.png"] = ("none", "inside a folder that cannot be listed", None)
    os.symlink("self_loop.jpg", folder / "self_loop.jpg")  # ELOOP when opened
    expected["self_loop.jpg"] = ("errors", "unreadable", None)
    os.symlink(".", folder / "dir_loop")  # a symlinked folder: not followed
    expected["dir_loop"] = ("none", "symlinked folders are not followed", None)
    os.link(folder / "really_a_png.jpg", folder / "hard_link.png")  # same inode, own URI
    expected["hard_link.png"] = ("results", False, None)
    (folder / "real_out").mkdir()
    os.symlink("real_out", folder / "link_to_out")
    expected["real_out"] = ("none", "the run's own output, through a symlink", None)
    expected["link_to_out"] = ("none", "symlinked folders are not followed", None)


def _gif_bomb() -> bytes:
    """A real 2x2 GIF whose logical screen claims 60,000 x 60,000 pixels."""
    gif_bomb = bytearray(_save(Image.new("RGB", (2, 2)), "GIF"))
    gif_bomb[6:10] = (60_000).to_bytes(2, "little") * 2
    return bytes(gif_bomb)


def _hostile_payloads(sharp: Image.Image, blurred: Image.Image
                      ) -> dict[str, tuple[str, object, bytes]]:
    """Broken bytes, bombs, odd modes and formats: {name: (table, outcome, bytes)}.

    Issue 16's additions are in :func:`_more_hostile_payloads`.
    """
    jpeg = _save(sharp, "JPEG", quality=95)
    png = _save(sharp, "PNG")
    exif_image = Image.fromarray(blurred_image(64, 96, 3))
    exif = exif_image.getexif()
    exif[0x0112] = 6
    gif = _save(sharp, "GIF")
    webp = _save(sharp, "WEBP", lossless=True)
    bmp = _save(sharp, "BMP")
    frames = [Image.fromarray(blurred_image(48, 48, 10 + i)) for i in range(200)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:])
    expected = {
        # name: (table, error_type or expected verdict)
        "zero bytes.jpg": ("errors", "empty_file", b""),
        "truncated.jpg": ("errors", "decode_error", jpeg[: len(jpeg) // 2]),
        "truncated.png": ("errors", "decode_error", png[: len(png) // 2]),
        "random.jpg": ("errors", "not_an_image", np.random.default_rng(0).bytes(4096)),
        "error_page.jpg": ("errors", "not_an_image",
                           b"<!DOCTYPE html>\n<html><title>404 Not Found</title></html>"),
        "document.pdf": ("errors", "not_an_image", b"%PDF-1.4\n%binary"),
        "notes.txt": ("errors", "not_an_image", b"just some notes\n"),
        "bomb.png": ("errors", "too_many_pixels", png_header_only(50_000, 50_000)),
        "absurd_aspect.png": ("errors", "aspect_ratio_out_of_range",
                              _save(Image.new("RGB", (2000, 20)), "PNG")),
        "one_pixel.png": ("errors", "image_too_small", _save(Image.new("RGB", (1, 1)), "PNG")),
        "cmyk.jpg": ("results", False, _save(sharp.convert("CMYK"), "JPEG", quality=98)),
        "sixteen_bit.png": ("results", True, _save(Image.fromarray(
            np.asarray(blurred.convert("L"), np.uint16) * 257), "PNG")),
        "palette.png": ("results", True, _save(blurred.convert("P"), "PNG")),
        "alpha.png": ("results", False, _save(sharp.convert("RGBA"), "PNG")),
        "animated.gif": ("results", True, animated.getvalue()),
        "exif_rotated.jpg": ("results", True, _save(exif_image, "JPEG", quality=95,
                                                     exif=exif.tobytes())),
        "spaces and ünïcödé 图片.png": ("results", False, png),
        "new\nline.png": ("results", False, png),
        "truncated.gif": ("errors", "decode_error", gif[: len(gif) // 2]),
        "truncated.webp": ("errors", "corrupt_header", webp[: len(webp) // 2]),
        "truncated.bmp": ("errors", "decode_error", bmp[: len(bmp) // 2]),
        "jpeg_header_only.jpg": ("errors", "corrupt_header", b"\xff\xd8\xff\xe0" + b"\0" * 16),
        "png_signature_only.png": ("errors", "corrupt_header", b"\x89PNG\r\n\x1a\n"),
        "bad_crc.png": ("errors", "decode_error", png[:33] + bytes(4) + png[37:]),
        "archive.png": ("errors", "not_an_image", b"PK\x03\x04" + bytes(64)),
        "program.jpg": ("errors", "not_an_image", b"\x7fELF\x02\x01\x01" + bytes(64)),
        "drawing.png": ("errors", "not_an_image",
                        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
        "api_response.jpg": ("errors", "not_an_image", b'{"error": "rate limited"}'),
        "gif_bomb.gif": ("errors", "too_many_pixels", _gif_bomb()),
        "tall_sliver.jpg": ("errors", "aspect_ratio_out_of_range",
                            _save(Image.new("RGB", (16, 1600)), "JPEG")),
    }
    return expected


def write_hostile_files(folder: str) -> dict[str, tuple[str, object]]:
    """Write broken, hostile and odd-but-valid files into an existing folder.

    Returns:
        {file name: (table, expected)}: for "errors" the expected error_type, for "results"
        the expected is_blurry verdict of the tiny models, for "none" why no row may name it
        (nor anything below it). Some failures need the test's simulation (HOSTILE_*).
    """
    folder = pathlib.Path(folder)
    sharp = Image.fromarray(sharp_image(96, 96, 1))
    blurred = Image.fromarray(blurred_image(96, 96, 2))
    expected = _hostile_payloads(sharp, blurred)
    expected.update(_more_hostile_payloads(sharp, blurred))
    for name, (_, _, data) in expected.items():
        (folder / name).write_bytes(data)
    _write_hostile_tree(folder, expected)
    os.symlink(folder / "does-not-exist.jpg", folder / "broken_link.jpg")
    expected["broken_link.jpg"] = ("errors", "unreadable", None)
    os.mkfifo(folder / "fifo.jpg")  # reading a FIFO would block forever
    expected["fifo.jpg"] = ("errors", "unreadable", None)
    return {name: (table, outcome) for name, (table, outcome, _) in expected.items()}
