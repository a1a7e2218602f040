"""Small generated test images and tiny real Keras models with known behaviour.

The tiny models are not trained: their weights are set by hand so that they measure local
Laplacian energy (fine detail). Low energy means blurry. That gives real `.keras` files whose
verdicts and masks are predictable on generated images, so the pipeline can be tested end to
end without the shipped models.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

TINY_INPUT_SIZE = 64
TINY_MASK_STRIDE = 4
# P(blurry) = sigmoid(ENERGY_BIAS - ENERGY_WEIGHT * mean |Laplacian|); the decision point is
# an energy of 55 (grey levels): sharp 2-px texture at 64 px measures ~78, whole-frame blur ~8,
# a half-blurred square ~43.
ENERGY_WEIGHT = 0.1
ENERGY_BIAS = 5.5


def sharp_image(height: int, width: int, seed: int) -> np.ndarray:
    """Fine random texture (2 px blocks): plenty of high-frequency energy everywhere."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 2 + 1, width // 2 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:height, :width]


def blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an RGB image (per channel)."""
    blurred = ndimage.gaussian_filter(pixels.astype(np.float32), sigma=(sigma, sigma, 0))
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def blurred_image(height: int, width: int, seed: int, sigma: float = 6.0) -> np.ndarray:
    """Sharp texture blurred over the whole frame."""
    return blur(sharp_image(height, width, seed), sigma)


def half_blurred_image(height: int, width: int, seed: int, sigma: float = 6.0) -> np.ndarray:
    """Left half blurred, right half sharp."""
    pixels = sharp_image(height, width, seed)
    pixels[:, : width // 2] = blur(pixels, sigma)[:, : width // 2]
    return pixels


def encode(pixels: np.ndarray, image_format: str, **save_args: object) -> bytes:
    """Encode an array with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **save_args)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds almost no data (decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

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


def save_tiny_models(folder: str, size: int = TINY_INPUT_SIZE) -> dict[str, str]:
    """Build, save and return the paths of the tiny Laplacian-energy classifier and identifier."""
    import keras

    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
    grey_weights = np.full((1, 1, 3, 1), 1.0 / 3.0, np.float32)
    # Two channels, +L and -L: after ReLU they sum to |L| without a custom layer.
    laplacian_weights = np.stack([laplacian, -laplacian], axis=-1)[:, :, None, :]

    def energy(inputs: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
        grey = keras.layers.Conv2D(1, 1, use_bias=False, name=f"{prefix}_grey")
        edges = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name=f"{prefix}_lap")
        out = keras.layers.ReLU()(edges(grey(inputs)))
        grey.set_weights([grey_weights])
        edges.set_weights([laplacian_weights])
        return out

    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(energy(inputs, "c"))
    decide = keras.layers.Dense(1, activation="sigmoid", name="decide")
    classifier = keras.Model(inputs, decide(pooled), name="tiny_classifier")
    decide.set_weights([np.full((2, 1), -ENERGY_WEIGHT, np.float32),
                        np.array([ENERGY_BIAS], np.float32)])

    inputs = keras.Input((size, size, 3))
    local = keras.layers.AveragePooling2D(TINY_MASK_STRIDE)(energy(inputs, "i"))
    per_pixel = keras.layers.Conv2D(1, 1, activation="sigmoid", name="decide_pixel")
    identifier = keras.Model(inputs, per_pixel(local), name="tiny_identifier")
    per_pixel.set_weights([np.full((1, 1, 2, 1), -ENERGY_WEIGHT, np.float32),
                           np.array([ENERGY_BIAS], np.float32)])

    paths = {"classifier": os.path.join(folder, "tiny_classifier.keras"),
             "identifier": os.path.join(folder, "tiny_identifier.keras")}
    classifier.save(paths["classifier"])
    identifier.save(paths["identifier"])
    return paths


def save_constant_classifier(path: str, value: float, size: int = TINY_INPUT_SIZE) -> str:
    """A broken classifier that answers ``value`` (e.g. NaN or 7.0) for every image."""
    import keras

    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    answer = keras.layers.Dense(1, name="answer")  # no sigmoid: the output is the bias
    model = keras.Model(inputs, answer(pooled), name="constant_classifier")
    answer.set_weights([np.zeros((3, 1), np.float32), np.array([value], np.float32)])
    model.save(path)
    return path


def write_mixed_folder(folder: str, n_sharp: int = 4, n_blurred: int = 4) -> dict[str, object]:
    """Write a mixed set of images; returns paths grouped by what should happen to them."""
    expected: dict[str, list[str]] = {"sharp": [], "blurry": [], "error": []}

    def write(name: str, data: bytes, group: str) -> str:
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        expected[group].append(os.path.abspath(path))
        return path

    for index in range(n_sharp):
        write(f"sharp_{index}.png", encode(sharp_image(96, 96, index), "PNG"), "sharp")
    for index in range(n_blurred):
        write(f"blurred_{index}.png", encode(blurred_image(96, 96, 100 + index), "PNG"), "blurry")
    write("half/half_blurred.png", encode(half_blurred_image(96, 96, 7), "PNG"), "blurry")
    write("formats/sharp.jpg", encode(sharp_image(96, 96, 11), "JPEG", quality=98), "sharp")
    write("formats/blurred.webp", encode(blurred_image(96, 96, 12), "WEBP", lossless=True),
          "blurry")
    write("formats/blurred.tiff", encode(blurred_image(96, 96, 13), "TIFF"), "blurry")
    write("formats/sharp.bmp", encode(sharp_image(96, 96, 14), "BMP"), "sharp")
    write("formats/blurred.gif", encode(blurred_image(96, 96, 15), "GIF"), "blurry")
    write("formats/blurred grey ü.png",
          encode(blurred_image(96, 96, 16)[..., 0].copy(), "PNG"), "blurry")
    truncated = encode(sharp_image(96, 96, 17), "JPEG")
    write("corrupt/truncated.jpg", truncated[: len(truncated) // 3], "error")
    write("corrupt/empty.jpg", b"", "error")
    write("corrupt/error_page.jpg", b"<!DOCTYPE html><html><body>403 Forbidden</body></html>",
          "error")
    write("corrupt/random.png", np.random.default_rng(5).bytes(2048), "error")
    write("corrupt/bomb.png", png_header_only(50_000, 50_000), "error")
    return expected


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
        "gzipped.jpg": ("errors", "not_an_image", gzip.compress(jpeg)),
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


def write_hostile_files(folder: str) -> dict[str, tuple[str, object]]:
    """Write broken, hostile and odd-but-valid files into an existing folder.

    Returns:
        {file name: (table, expected)}: for "errors" the expected error_type, for "results"
        the expected is_blurry verdict of the tiny models, for "none" why no row may name it
        (nor anything below it). Some failures need the test's simulation (HOSTILE_*).
    """
    import pathlib

    folder = pathlib.Path(folder)
    sharp = Image.fromarray(sharp_image(96, 96, 1))
    blurred = Image.fromarray(blurred_image(96, 96, 2))
    jpeg = _save(sharp, "JPEG", quality=95)
    png = _save(sharp, "PNG")
    exif_image = Image.fromarray(blurred_image(64, 96, 3))
    exif = exif_image.getexif()
    exif[0x0112] = 6
    gif = _save(sharp, "GIF")
    # A real 2x2 GIF whose logical screen claims 60,000 x 60,000 pixels.
    gif_bomb = bytearray(_save(Image.new("RGB", (2, 2)), "GIF"))
    gif_bomb[6:10] = (60_000).to_bytes(2, "little") * 2
    gif_bomb = bytes(gif_bomb)
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
        "gif_bomb.gif": ("errors", "too_many_pixels", gif_bomb),
        "tall_sliver.jpg": ("errors", "aspect_ratio_out_of_range",
                            _save(Image.new("RGB", (16, 1600)), "JPEG")),
    }
    expected.update(_more_hostile_payloads(sharp, blurred))
    for name, (_, _, data) in expected.items():
        (folder / name).write_bytes(data)
    _write_hostile_tree(folder, expected)
    os.symlink(folder / "does-not-exist.jpg", folder / "broken_link.jpg")
    expected["broken_link.jpg"] = ("errors", "unreadable", None)
    os.mkfifo(folder / "fifo.jpg")  # reading a FIFO would block forever
    expected["fifo.jpg"] = ("errors", "unreadable", None)
    return {name: (table, outcome) for name, (table, outcome, _) in expected.items()}
