"""A small demo corpus of real photos, derived at run time from scikit-image's bundled photos.

scikit-image ships a dozen real photographs inside its wheel (no download). The demo copies
them, blurs a few on purpose (whole frame, one side as with a shallow depth of field, a
camera-shake region) so both branches of the detect job run, and adds one broken file so the
errors table has a row too. Nothing is fetched from the internet.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image

from sbdn_pipeline.synth import blur, kernels

# Real photographs among scikit-image's bundled data (file names inside skimage/data), all
# public domain or CC0 (the Middlebury motorcycle pair is left out: no licence is stated).
DEMO_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "brick.png", "grass.png",
    "gravel.png", "camera.png", "coins.png", "moon.png", "hubble_deep_field.jpg",
)


@dataclasses.dataclass(frozen=True)
class DemoImage:
    """One file of the demo corpus and what was done to it."""

    file_name: str
    source: str
    treatment: str


def _skimage_data_folder() -> str:
    try:
        import skimage
    except ImportError as exc:
        raise RuntimeError(
            "the demo corpus is derived from scikit-image's bundled photos: "
            "pip install 'sbdn-pipeline[demo]' (or scikit-image)"
        ) from exc
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def _side_alpha(height: int, width: int) -> np.ndarray:
    """Right 45% of the frame blurred, with a soft 8% transition (like a shallow depth of field)."""
    columns = np.linspace(0.0, 1.0, width, dtype=np.float32)
    ramp = np.clip((columns - 0.51) / 0.08, 0.0, 1.0)
    return np.broadcast_to(ramp, (height, width)).copy()


def _box_alpha(height: int, width: int) -> np.ndarray:
    alpha = np.zeros((height, width), np.float32)
    alpha[height // 4: 3 * height // 4, width // 5: 3 * width // 5] = 1.0
    return alpha


def _apply(pixels: np.ndarray, kernel: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    blurred = blur.convolve(pixels.astype(np.float32), kernel)
    mixed = blur.composite(pixels, blurred, alpha)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def write_demo_corpus(folder: str) -> list[DemoImage]:
    """Write the demo corpus into ``folder`` (created); returns what each file is."""
    os.makedirs(folder, exist_ok=True)
    data = _skimage_data_folder()
    written: list[DemoImage] = []
    rng = np.random.default_rng(2026)

    def add(name: str, suffix: str, treatment: str, apply=lambda pixels: pixels) -> None:
        path = os.path.join(data, name)
        if not os.path.exists(path):  # older scikit-image releases lack some photos
            return
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        file_name = f"{os.path.splitext(name)[0]}{suffix}.jpg"
        Image.fromarray(apply(pixels)).save(os.path.join(folder, file_name), quality=92)
        written.append(DemoImage(file_name, name, treatment))

    for name in DEMO_PHOTOS:
        add(name, "", "original (sharp)")
    treatments = {
        "astronaut.png": ("whole frame, Gaussian sigma 4 px",
                          lambda p: _apply(p, kernels.gaussian_kernel(4.0),
                                           np.ones(p.shape[:2], np.float32))),
        "coffee.png": ("right side defocused (disk radius 7 px)",
                       lambda p: _apply(p, kernels.defocus_kernel(7.0),
                                        _side_alpha(*p.shape[:2]))),
        "chelsea.png": ("central box with camera shake",
                        lambda p: _apply(p, kernels.shake_kernel(
                            kernels.random_shake_trajectory(rng), 6.0),
                            _box_alpha(*p.shape[:2]))),
        "brick.png": ("whole frame, linear motion 15 px",
                      lambda p: _apply(p, kernels.linear_motion_kernel(15.0, 0.3),
                                       np.ones(p.shape[:2], np.float32))),
    }
    for name, (treatment, apply) in treatments.items():
        add(name, "_blurred", f"blurred on purpose: {treatment}", apply)
    with open(os.path.join(folder, "download_error.jpg"), "wb") as handle:
        handle.write(b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>")
    written.append(DemoImage("download_error.jpg", "-", "broken: an HTML error page"))
    return written
