"""Small generated test images and tiny real Keras models with known behaviour.

The tiny models are not trained: their weights are set by hand so that they measure local
Laplacian energy (fine detail). Low energy means blurry. That gives real `.keras` files whose
verdicts and masks are predictable on generated images, so the pipeline can be tested end to
end without the shipped models.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

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
