"""Throughput of `sbdn detect` side by side with the practical limit and the original approach.

One run, one corpus, five rows, each in its own subprocess so that its peak RSS (whole process
tree, sampled) and CPU seconds (user + sys of the tree) are its own:

    detect      1.  `sbdn detect`, local runner, default options
    detect-mp   1b. the same with --direct_num_workers=2 --direct_running_mode=multi_processing
    tfdata      2.  the limit: a hand-written tf.data loop (parallel read + decode, batching,
                    prefetch) with the same decode/letterbox policy, models and cascade
    original    3.  the original research approach: per image `keras.utils.load_img` +
                    `model.predict`, ResNet-50 then the original encoder-decoder (random weights)
    laplacian   4.  Laplacian variance with OpenCV (speed reference only)

Usage (from the project root; see benchmarks/README.md):
    python -m benchmarks.throughput --images 2000 [--sharp-images PATH] [--long-side 1024]
        [--blurred-fraction 0.3] [--classifier PATH --identifier PATH] [--work DIR]
        [--only ROW ...] [--memory-mode] [--profile] [-- extra sbdn detect options]

Results: a table on stdout and benchmarks/results/throughput-<date>-<cores>cores.{json,md}.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import glob
import hashlib
import json
import multiprocessing
import os
import platform
import re
import resource
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

# Heavy imports (numpy, TensorFlow, Beam, OpenCV) happen inside functions: the same module is
# the entry point of every measured subprocess, and the OpenCV row must not pay for TensorFlow.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")
BLUR_THRESHOLD = 0.5  # the detect job's default --blur-threshold
DEFAULT_BATCH_SIZE = 16  # the detect job's default --batch-size
CORPUS_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

ROW_LABELS = {
    "detect": "1. sbdn detect (local runner, default options)",
    "detect-mp": "1b. sbdn detect, 2 worker processes",
    "tfdata": "2. hand-written tf.data loop (the limit)",
    "original": "3. original approach (load_img + predict per image)",
    "laplacian": "4. Laplacian variance, OpenCV (reference)",
}
ALL_ROWS = tuple(ROW_LABELS)
DETECT_ROWS = ("detect", "detect-mp")
MULTI_PROCESSING_ARGS = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
# (numerator, denominator, target from issue 5: "at least this").
RATIOS = (
    ("detect", "tfdata", 0.85),
    ("detect", "original", 10.0),
    ("detect-mp", "tfdata", 0.85),
    ("detect-mp", "original", 10.0),
)
MEMORY_TARGET_RATIO = 1.2

STEADY_INSIDE = "timed inside the process: first image read to last result"
STEADY_DIFFERENCE = (
    "difference of the full run and a run of the same command on the first {k} images"
)
STEADY_JOB_TIMER = (
    "sbdn's own job timer (excludes imports and model validation; includes "
    "Beam and worker start-up)"
)


class BenchmarkError(Exception):
    """A problem with the benchmark's arguments or inputs, reported as one line."""


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """What a corpus is made of; equal specs give byte-identical corpora (so they are cached).

    Attributes:
        count: number of JPEG files.
        long_side: approximate long side in pixels (each image gets 90-100 % of it).
        blurred_fraction: share of the images that get a partially blurred region.
        sharp_images: folder of photos to derive the images from; None for generated scenes.
        seed: random seed.
    """

    count: int
    long_side: int
    blurred_fraction: float
    sharp_images: str | None = None
    seed: int = 0

    def key(self) -> str:
        """Folder name of the cached corpus."""
        if self.sharp_images:
            digest = hashlib.sha1(os.path.abspath(self.sharp_images).encode()).hexdigest()[:8]
            source = f"photos-{digest}"
        else:
            source = "procedural"
        return (
            f"corpus-v{CORPUS_VERSION}-{source}-n{self.count}-l{self.long_side}"
            f"-b{self.blurred_fraction:.2f}-s{self.seed}"
        )


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A written corpus: ``images`` holds only the JPEGs; the manifest sits next to it."""

    folder: str
    images: str
    manifest: dict[str, Any]

    @property
    def count(self) -> int:
        return len(self.manifest["files"])

    def paths(self) -> list[str]:
        return [os.path.join(self.images, entry["name"]) for entry in self.manifest["files"]]

    def blurred_names(self) -> list[str]:
        return [entry["name"] for entry in self.manifest["files"] if entry["blurred"]]


def _value_noise(height: int, width: int, cell: int, rng: Any) -> Any:
    """Smooth random field in [-1, 1] with features about ``cell`` pixels across."""
    import numpy as np
    from PIL import Image

    grid = rng.uniform(-1.0, 1.0, size=(max(2, height // cell + 2), max(2, width // cell + 2)))
    field = Image.fromarray(grid.astype(np.float32), mode="F").resize(
        (width, height), Image.BICUBIC
    )
    return np.asarray(field, dtype=np.float32)


def _texture(height: int, width: int, rng: Any, cells: Sequence[int]) -> Any:
    """Multi-octave value noise: structured detail at several scales (not white noise)."""
    import numpy as np

    total = np.zeros((height, width), np.float32)
    for index, cell in enumerate(cells):
        total += _value_noise(height, width, cell, rng) * 0.6**index
    return total / np.abs(total).max()


def procedural_scene(height: int, width: int, rng: Any) -> Any:
    """A generated street-like scene: sky, textured ground, buildings with windows, trees, poles.

    Edges and texture exist at many scales, as in photos, so decoding, the models and the
    Laplacian all do realistic work (white noise would compress badly and look nothing like
    a photo).

    Returns:
        RGB uint8 array (height, width, 3).
    """
    import numpy as np
    from PIL import Image, ImageDraw

    horizon = int(height * rng.uniform(0.4, 0.65))
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky_top, sky_bottom = rng.uniform(40, 160, 3), rng.uniform(150, 250, 3)
    image = np.broadcast_to(sky_top * (1 - ramp) + sky_bottom * ramp, (height, width, 3)).copy()
    clouds = _texture(height, width, rng, (max(8, width // 6), max(4, width // 24)))
    image += 40.0 * np.clip(clouds, 0, None)[..., None]
    ground = rng.uniform(50, 150, 3)
    image[horizon:] = ground
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    detail = Image.new("L", (width, height), 0)  # where fine texture goes
    draw, draw_detail = ImageDraw.Draw(canvas), ImageDraw.Draw(detail)
    draw_detail.rectangle((0, horizon, width, height), fill=255)
    # A road in perspective with lane markings.
    vanishing = width * rng.uniform(0.3, 0.7)
    draw.polygon(
        [
            (vanishing - 2, horizon),
            (vanishing + 2, horizon),
            (width * rng.uniform(0.8, 1.2), height),
            (width * rng.uniform(-0.2, 0.2), height),
        ],
        fill=tuple(int(v) for v in rng.uniform(60, 110, 3)),
    )
    for step in range(12):
        t0, t1 = (step / 12) ** 2, ((step + 0.5) / 12) ** 2
        y0, y1 = horizon + t0 * (height - horizon), horizon + t1 * (height - horizon)
        draw.line(
            [(vanishing, y0), (vanishing, y1)],
            fill=(235, 235, 220),
            width=max(1, int(1 + 8 * t1 * width / 1024)),
        )
    # Buildings standing on the horizon, each with a grid of windows.
    x = -rng.uniform(0, width * 0.1)
    while x < width:
        building_w = width * rng.uniform(0.08, 0.25)
        top = horizon - height * rng.uniform(0.1, 0.55)
        colour = tuple(int(v) for v in rng.uniform(70, 220, 3))
        box = (x, top, x + building_w, horizon)
        draw.rectangle(box, fill=colour, outline=(30, 30, 30), width=max(1, width // 400))
        draw_detail.rectangle(box, fill=255)
        cell_w = max(4.0, building_w / rng.integers(3, 9))
        cell_h = max(4.0, cell_w * rng.uniform(0.8, 1.6))
        window = tuple(int(v) for v in rng.uniform(20, 255, 3))
        wy = top + cell_h * 0.3
        while wy + cell_h * 0.6 < horizon:
            wx = x + cell_w * 0.25
            while wx + cell_w * 0.5 < x + building_w:
                draw.rectangle((wx, wy, wx + cell_w * 0.5, wy + cell_h * 0.6), fill=window)
                wx += cell_w
            wy += cell_h
        x += building_w * rng.uniform(0.9, 1.3)
    # Trees (leafy blobs) and poles with wires.
    for _ in range(int(rng.integers(2, 7))):
        cx, cy = rng.uniform(0, width), horizon + rng.uniform(-0.1, 0.25) * height
        radius = width * rng.uniform(0.03, 0.1)
        draw.line(
            [(cx, cy), (cx, cy + radius * 1.5)], fill=(70, 50, 30), width=max(2, int(radius / 6))
        )
        leaves = tuple(
            int(v) for v in (rng.uniform(20, 80), rng.uniform(70, 160), rng.uniform(20, 80))
        )
        ellipse = (cx - radius, cy - radius * 1.2, cx + radius, cy + radius * 0.4)
        draw.ellipse(ellipse, fill=leaves)
        draw_detail.ellipse(ellipse, fill=255)
    poles = sorted(rng.uniform(0, width, size=int(rng.integers(1, 4))))
    for px in poles:
        draw.line(
            [(px, horizon - height * 0.35), (px, horizon + height * 0.1)],
            fill=(40, 40, 40),
            width=max(1, width // 300),
        )
    for a, b in zip(poles, poles[1:]):
        draw.line(
            [(a, horizon - height * 0.33), (b, horizon - height * 0.31)], fill=(20, 20, 20), width=1
        )
    pixels = np.asarray(canvas, dtype=np.float32)
    # Fine texture (brick, grass, asphalt grain) on everything but the sky.
    cells = (max(4, width // 64), 8, 4, 2)
    grain = _texture(height, width, rng, cells)[..., None]
    weight = np.asarray(detail, dtype=np.float32)[..., None] / 255.0
    pixels *= 1.0 + 0.3 * grain * weight
    pixels += rng.normal(0.0, 2.0, size=pixels.shape)  # a little sensor noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def list_photos(folder: str) -> list[str]:
    """Image files under ``folder`` (recursive, sorted).

    Raises:
        BenchmarkError: missing folder or no images in it.
    """
    if not os.path.isdir(folder):
        raise BenchmarkError(f"--sharp-images {folder!r} is not a folder")
    found = sorted(
        path
        for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
        if path.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(path)
    )
    if not found:
        raise BenchmarkError(
            f"--sharp-images {folder!r} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return found


def photo_crop(photo: Any, long_side: int, rng: Any) -> Any:
    """A random crop (varied aspect ratio, 55-100 % of the photo) resized to ~long_side.

    Crops are at least ~long_side on their long side when the photo allows, so resizing
    shrinks rather than enlarges (an enlarged crop is smooth and looks blurry to a model).
    """
    import numpy as np
    from PIL import Image

    height, width = photo.shape[:2]
    aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3]))
    target = long_side * rng.uniform(0.9, 1.0)
    largest_w = min(width, height * aspect)  # the largest crop of that aspect that fits
    largest_h = largest_w / aspect
    largest_long = max(largest_w, largest_h)
    lower = min(largest_long, max(0.55 * largest_long, target))
    shrink = rng.uniform(lower, largest_long) / largest_long
    crop_w, crop_h = max(8, int(largest_w * shrink)), max(8, int(largest_h * shrink))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    crop = photo[top : top + crop_h, left : left + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    scale = target / max(crop_w, crop_h)
    size = (max(16, round(crop_w * scale)), max(16, round(crop_h * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.LANCZOS))


def photos_for(folder: str, long_side: int) -> tuple[list[str], int]:
    """The photos of ``folder`` to crop from: those with a long side of at least 90 % of
    ``long_side`` when there are any (no enlarging), else all. Returns (photos, skipped)."""
    from PIL import Image

    photos = list_photos(folder)
    large = []
    for path in photos:
        with Image.open(path) as image:  # reads the header only
            if max(image.size) >= 0.9 * long_side:
                large.append(path)
    chosen = large or photos
    return chosen, len(photos) - len(chosen)


def partially_blur(pixels: Any, rng: Any) -> tuple[Any, dict[str, Any]]:
    """Blur one region of an image with a random kernel (sbdn_pipeline.synth).

    Returns:
        (blurred RGB uint8 image, what was done: region shape, kernel kind, sigma, area).
    """
    import numpy as np

    from sbdn_pipeline.synth import blur, kernels, regions

    height, width = pixels.shape[:2]
    long_side = max(height, width)
    feather_px = 0.015 * long_side
    shape = str(rng.choice(["rectangle", "ellipse", "polygon", "blob", "side"]))
    if shape == "side":
        alpha, _ = regions.side_alpha(height, width, rng, transition_px=0.05 * long_side)
    else:
        alpha = getattr(regions, f"{shape}_alpha")(height, width, rng, feather_px)
    kind = str(rng.choice(kernels.BLUR_KINDS))
    sigma = float(rng.uniform(0.004, 0.02) * long_side)
    kernel = kernels.random_kernel_spec(kind, rng).kernel(sigma)
    blurred = blur.convolve(pixels.astype(np.float32), kernel)
    mixed = blur.composite(pixels, blurred, alpha)
    info = {
        "region": shape,
        "kernel": kind,
        "sigma_px": round(sigma, 2),
        "blurred_area": round(float(regions.label_mask(alpha).mean()), 3),
    }
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8), info


def _make_image(task: tuple[int, bool, str | None, int, int, str]) -> dict[str, Any]:
    """Write one corpus image (runs in a worker process)."""
    import numpy as np
    from PIL import Image

    index, blurred, photo_path, long_side, seed, folder = task
    rng = np.random.default_rng([seed, index])
    if photo_path:
        with Image.open(photo_path) as photo:
            pixels = photo_crop(np.asarray(photo.convert("RGB")), long_side, rng)
    else:
        aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4]))
        long_px = long_side * rng.uniform(0.9, 1.0)
        width, height = (long_px, long_px / aspect) if aspect >= 1 else (long_px * aspect, long_px)
        pixels = procedural_scene(max(16, round(height)), max(16, round(width)), rng)
    entry: dict[str, Any] = {
        "name": f"img_{index:06d}.jpg",
        "blurred": blurred,
        "source": os.path.basename(photo_path) if photo_path else "procedural",
    }
    if blurred:
        pixels, info = partially_blur(pixels, rng)
        entry.update(info)
    entry["width"], entry["height"] = int(pixels.shape[1]), int(pixels.shape[0])
    Image.fromarray(pixels).save(os.path.join(folder, entry["name"]), quality=90)
    return entry


def ensure_corpus(work: str, spec: CorpusSpec, jobs: int | None = None) -> Corpus:
    """The corpus for ``spec`` under ``work``: reused when already complete, else written.

    The manifest (corpus.json) is written last, so an interrupted generation is redone.
    """
    folder = os.path.join(work, spec.key())
    images = os.path.join(folder, "images")
    manifest_path = os.path.join(folder, "corpus.json")
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        if len(manifest["files"]) == spec.count and all(
            os.path.exists(os.path.join(images, entry["name"])) for entry in manifest["files"]
        ):
            return Corpus(folder, images, manifest)
    import numpy as np

    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(images)
    photos, skipped = (
        photos_for(spec.sharp_images, spec.long_side) if spec.sharp_images else ([], 0)
    )
    rng = np.random.default_rng(spec.seed)
    blurred = set(rng.permutation(spec.count)[: round(spec.count * spec.blurred_fraction)].tolist())
    order = rng.permutation(len(photos)).tolist() if photos else []
    tasks = [
        (
            index,
            index in blurred,
            photos[order[index % len(photos)]] if photos else None,
            spec.long_side,
            spec.seed,
            images,
        )
        for index in range(spec.count)
    ]
    started = time.monotonic()
    workers = jobs or os.cpu_count() or 1
    if workers > 1 and spec.count > 8:
        # spawn, not fork: the caller may already run TensorFlow threads, and forking a
        # threaded process can deadlock its children.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            files = list(pool.map(_make_image, tasks, chunksize=8))
    else:
        files = [_make_image(task) for task in tasks]
    manifest = {
        "version": CORPUS_VERSION,
        **dataclasses.asdict(spec),
        "sharp_images": os.path.abspath(spec.sharp_images) if spec.sharp_images else None,
        "source": "photos" if photos else "procedural",
        "photos": len(photos),
        "photos_skipped_too_small": skipped,
        "blurred": len(blurred),
        "total_bytes": sum(os.path.getsize(os.path.join(images, f["name"])) for f in files),
        "generation_s": round(time.monotonic() - started, 1),
        "files": files,
    }
    partial = f"{manifest_path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
    os.replace(partial, manifest_path)
    return Corpus(folder, images, manifest)


def corpus_subset(corpus: Corpus, count: int) -> str:
    """A folder with the first ``count`` images of the corpus (for start-up runs)."""
    folder = os.path.join(corpus.folder, f"images-first-{count}")
    names = [entry["name"] for entry in corpus.manifest["files"][:count]]
    if not (os.path.isdir(folder) and sorted(os.listdir(folder)) == sorted(names)):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for name in names:
            shutil.copyfile(os.path.join(corpus.images, name), os.path.join(folder, name))
    return folder


def warm_page_cache(paths: Sequence[str]) -> None:
    """Read every file once so the first row does not pay for cold disk reads alone."""
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass


# --------------------------------------------------------------------------------------------
# The job's decode and letterbox policy as TensorFlow graph ops (for the tf.data row)
# --------------------------------------------------------------------------------------------


def tf_working_pixels(data: Any, working_long_side: int) -> Any:
    """JPEG bytes -> RGB uint8 pixels exactly as the detect job prepares them.

    Same policy as ``images.decode_image(..., target_long_side=W)`` followed by
    ``inference.shrink_to_long_side(pixels, W)``: DCT-domain downscale by the largest ratio in
    (8, 4, 2) that keeps the long side >= W, then an area downscale to a long side of W.
    EXIF orientation and header validation are left out (the corpus has neither issue).
    """
    import tensorflow as tf

    shape = tf.io.extract_jpeg_shape(data)
    long_side = tf.maximum(shape[0], shape[1])
    # The conditions are nested (//8 >= W implies //4 >= W ...), so their count picks the ratio.
    index = tf.add_n(
        [tf.cast(long_side // ratio >= working_long_side, tf.int32) for ratio in (2, 4, 8)]
    )
    pixels = tf.switch_case(
        index,
        [
            (lambda ratio=ratio: tf.io.decode_jpeg(data, channels=3, ratio=ratio))
            for ratio in (1, 2, 4, 8)
        ],
    )
    height, width = tf.shape(pixels)[0], tf.shape(pixels)[1]
    long_side = tf.maximum(height, width)

    def shrink() -> Any:
        scale = tf.constant(working_long_side, tf.float64) / tf.cast(long_side, tf.float64)
        size = tf.stack([_scaled(height, scale), _scaled(width, scale)])
        resized = tf.image.resize(pixels, size, method="area")
        return tf.cast(tf.round(resized), tf.uint8)

    shrunk = tf.cond(long_side > working_long_side, shrink, lambda: pixels)
    return tf.ensure_shape(shrunk, [None, None, 3])


def _scaled(length: Any, scale: Any, upper: int | None = None) -> Any:
    """max(1, round(length * scale)) (half to even, like Python's round), optionally capped."""
    import tensorflow as tf

    value = tf.cast(tf.round(tf.cast(length, tf.float64) * scale), tf.int32)
    value = tf.maximum(value, 1)
    return tf.minimum(value, upper) if upper is not None else value


def tf_letterbox(pixels: Any, size: int) -> Any:
    """Graph version of ``sbdn_pipeline.inference.letterbox`` (same geometry, same resizing)."""
    import tensorflow as tf

    height, width = tf.shape(pixels)[0], tf.shape(pixels)[1]
    scale = tf.constant(size, tf.float64) / tf.cast(tf.maximum(height, width), tf.float64)
    content_height = _scaled(height, scale, size)
    content_width = _scaled(width, scale, size)
    top, left = (size - content_height) // 2, (size - content_width) // 2
    target = tf.stack([content_height, content_width])

    def resize() -> Any:
        # Same rule as letterbox(): area when shrinking (by height), bilinear when enlarging.
        return tf.cond(
            content_height < height,
            lambda: tf.image.resize(pixels, target, method="area"),
            lambda: tf.image.resize(pixels, target, method="bilinear"),
        )

    unchanged = tf.logical_and(tf.equal(content_height, height), tf.equal(content_width, width))
    content = tf.cond(unchanged, lambda: tf.cast(pixels, tf.float32), resize)
    padded = tf.image.pad_to_bounding_box(content, top, left, size, size)
    return tf.ensure_shape(padded, [size, size, 3])


# --------------------------------------------------------------------------------------------
# Measured rows (each runs in its own subprocess: `python -m benchmarks.throughput worker ...`)
# --------------------------------------------------------------------------------------------


def _model_input_size(model: Any, role: str) -> int:
    from sbdn_pipeline import inference

    shape = tuple(model.inputs[0].shape)
    return (
        int(shape[1]) if shape[1] and shape[1] == shape[2] else inference.DEFAULT_INPUT_SIZE[role]
    )


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _image_paths(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "*.jpg")))


def worker_tfdata(spec: dict[str, Any]) -> dict[str, Any]:
    """Row 2: read in a parallel tf.data pipeline, then the cascade by hand, no Beam.

    The classifier sees every image as the job does (its default tiles and global view,
    pooled: ``evaluate.predict_classifier``, the job's view policy); images with
    P(blurry) >= threshold are letterboxed for the identifier (``inference.letterbox``) and
    segmented in batches of the same size; masks are cropped back to the image
    (``unletterbox_mask``). Writing results is left out: this is the floor the job is
    compared with.
    """
    import numpy as np
    import tensorflow as tf

    from sbdn_pipeline import images, inference
    from sbdn_pipeline.training.evaluate import predict_classifier

    classifier = inference.load_keras_model(spec["classifier"])
    identifier = inference.load_keras_model(spec["identifier"])
    classifier_size = _model_input_size(classifier, inference.ROLE_CLASSIFIER)
    identifier_size = _model_input_size(identifier, inference.ROLE_IDENTIFIER)
    batch_size, threshold = spec["batch_size"], spec["threshold"]
    # Warm-up (graph tracing), as KerasModelHandler.load_model does: start-up, not steady state.
    classifier.predict_on_batch(np.zeros((1, classifier_size, classifier_size, 3), np.float32))
    identifier.predict_on_batch(np.zeros((1, identifier_size, identifier_size, 3), np.float32))
    paths = _image_paths(spec["images"])

    cpu_started, started = _cpu_self(), time.monotonic()
    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), tf.constant(paths)))
        .map(lambda index, path: (index, tf.io.read_file(path)),
             num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    probabilities: dict[str, float] = {}
    pending: list[tuple[int, Any, Any]] = []
    segmented = mask_pixels = 0

    def segment(items: list[tuple[int, Any, Any]]) -> None:
        nonlocal segmented, mask_pixels
        predictions = np.asarray(identifier.predict_on_batch(np.stack([x for _, x, _ in items])))
        for (_, _, info), prediction in zip(items, predictions):
            mask_pixels += inference.unletterbox_mask(prediction, info).size
            segmented += 1

    for indices, contents in dataset:
        blobs = [bytes(content) for content in contents.numpy()]
        scores = predict_classifier(
            classifier, classifier_size, [inference.ImageSource(blob) for blob in blobs])
        for row, index in enumerate(indices.numpy()):
            probabilities[os.path.basename(paths[index])] = float(scores[row])
            if scores[row] >= threshold:
                decoded = images.decode_image(blobs[row], target_long_side=identifier_size)
                pixels, info = inference.letterbox(
                    inference.shrink_to_long_side(decoded.pixels, identifier_size),
                    identifier_size)
                pending.append((int(index), pixels, info))
        while len(pending) >= batch_size:
            segment(pending[:batch_size])
            pending = pending[batch_size:]
    if pending:
        segment(pending)
    elapsed, cpu = time.monotonic() - started, _cpu_self() - cpu_started
    with open(spec["probabilities"], "w", encoding="utf-8") as handle:
        json.dump(probabilities, handle)
    return {
        "images": len(probabilities),
        "blurry": segmented,
        "steady_s": elapsed,
        "steady_cpu_s": cpu,
        "mask_pixels": mask_pixels,
        "model_input_sizes": [classifier_size, identifier_size],
    }


def worker_original(spec: dict[str, Any]) -> dict[str, Any]:
    """Row 3: the research notebooks' loop: per image load_img + predict, then the identifier.

    Models are ResNet-50 and the original encoder-decoder with random weights (speed does not
    depend on the weights), or the .keras files given (tests use tiny stand-ins). Which images
    reach the identifier is fixed by ``spec["route"]`` (names) so that the cascade does the
    same amount of work as with trained models; None routes by the classifier's own output.
    """
    import keras
    import numpy as np

    from sbdn_pipeline import inference
    from sbdn_pipeline.architectures import build_model

    def model(path: str | None, architecture: str) -> Any:
        return inference.load_keras_model(path) if path else build_model(architecture)

    classifier = model(spec.get("original_classifier"), "resnet50")
    identifier = model(spec.get("original_identifier"), "original-encoder-decoder")
    classifier_size = _model_input_size(classifier, inference.ROLE_CLASSIFIER)
    identifier_size = _model_input_size(identifier, inference.ROLE_IDENTIFIER)
    # Warm-up so the first image does not carry graph tracing (favours this row, not ours).
    classifier.predict(np.zeros((1, classifier_size, classifier_size, 3), np.float32), verbose=0)
    identifier.predict(np.zeros((1, identifier_size, identifier_size, 3), np.float32), verbose=0)
    route = set(spec["route"]) if spec.get("route") is not None else None
    paths = _image_paths(spec["images"])
    cpu_started, started = _cpu_self(), time.monotonic()
    segmented = 0
    for path in paths:
        image = keras.utils.load_img(path, target_size=(classifier_size, classifier_size))
        batch = keras.utils.img_to_array(image)[None]
        probability = float(classifier.predict(batch, verbose=0).reshape(-1)[0])
        blurry = (
            (os.path.basename(path) in route)
            if route is not None
            else (probability >= spec["threshold"])
        )
        if blurry:
            if identifier_size != classifier_size:
                image = keras.utils.load_img(path, target_size=(identifier_size, identifier_size))
                batch = keras.utils.img_to_array(image)[None]
            identifier.predict(batch, verbose=0)
            segmented += 1
    return {
        "images": len(paths),
        "blurry": segmented,
        "steady_s": time.monotonic() - started,
        "steady_cpu_s": _cpu_self() - cpu_started,
        "model_input_sizes": [classifier_size, identifier_size],
        "models": [classifier.name, identifier.name],
    }


def worker_laplacian(spec: dict[str, Any]) -> dict[str, Any]:
    """Row 4: cv2.imread + grey + variance of cv2.Laplacian, per image (speed reference)."""
    import cv2

    paths = _image_paths(spec["images"])
    cpu_started, started = _cpu_self(), time.monotonic()
    scores = []
    for path in paths:
        grey = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
        scores.append(float(cv2.Laplacian(grey, cv2.CV_64F).var()))
    return {
        "images": len(scores),
        "blurry": None,
        "steady_s": time.monotonic() - started,
        "steady_cpu_s": _cpu_self() - cpu_started,
        "opencv_threads": cv2.getNumThreads(),
    }


WORKERS = {"tfdata": worker_tfdata, "original": worker_original, "laplacian": worker_laplacian}


def own_peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM), in MiB; 0 where /proc is not available.

    Not ru_maxrss: Linux carries it across exec, so it would include the memory of the
    (TensorFlow-loaded) benchmark process this worker was forked from.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_main(argv: Sequence[str]) -> int:
    """``worker ROW SPEC.json``: run one row in this process, write its result JSON."""
    row, spec_path = argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    result = WORKERS[row](spec)
    # Exact peak of this (single) process; the parent's 0.2 s sampling can miss short rows.
    result["self_max_rss_mb"] = own_peak_rss_mb()
    with open(spec["result"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


# --------------------------------------------------------------------------------------------
# Running and measuring rows
# --------------------------------------------------------------------------------------------


def measure_command(command: Sequence[str], log_path: str) -> dict[str, Any]:
    """Run a command; wall time, exit code, peak RSS of its process tree and its CPU seconds.

    Peak RSS comes from benchmarks.scale's sampler. CPU seconds are the RUSAGE_CHILDREN
    difference around the run: user + sys of the command and of every descendant that was
    waited for (Beam waits for its worker processes), so no sampling gap is lost.
    Output goes to ``log_path`` (a pipe could fill up and block the command).
    """
    from benchmarks import scale

    # exec: the shell becomes the command, so the sampled root is the command itself.
    script = f'cd {shlex.quote(ROOT)} && exec "$@" > {shlex.quote(log_path)} 2>&1'
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    measured = scale.run_and_sample(["/bin/sh", "-c", script, "sh", *command])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        output = handle.read()
    return {
        "exit_code": measured["exit_code"],
        "wall_s": measured["wall_s"],
        "peak_rss_mb": measured["peak_rss_mb"],
        "cpu_s": cpu,
        "output": output,
    }


def _rate(images: int, seconds: float | None) -> float | None:
    return images / seconds if seconds and seconds > 0 else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """The two models every row except 3 and 4 runs; ``default`` when shipped ones are used."""

    classifier: str
    identifier: str
    default: bool
    classifier_size: int = 0
    identifier_size: int = 0


def detect_command(
    images: str, output: str, models: ModelChoice, row: str, extra: Sequence[str]
) -> list[str]:
    """The `sbdn detect` command line of a detect row."""
    command = [sys.executable, "-m", "sbdn_pipeline.cli", "detect", images, "--output", output]
    if not models.default:  # with the shipped models: truly the default options
        command += ["--classifier", models.classifier, "--identifier", models.identifier]
    if row == "detect-mp":
        command += list(MULTI_PROCESSING_ARGS)
    return command + list(extra)


def parse_detect_summary(output: str) -> dict[str, Any]:
    """Counts and the job's own seconds from the 'run ...: matched N = ...' line."""
    match = re.search(
        r"^run \S+: matched (\d+) = .*?sharp (\d+) \+ blurry (\d+) \+ errors (\d+) "
        r"\(([\d.]+) s",
        output,
        re.MULTILINE,
    )
    if not match:
        return {}
    matched, sharp, blurry, errors, seconds = match.groups()
    return {
        "matched": int(matched),
        "sharp": int(sharp),
        "blurry": int(blurry),
        "errors": int(errors),
        "job_s": float(seconds),
    }


def steady_by_difference(
    full: dict[str, Any], short: dict[str, Any], images: int, short_images: int
) -> tuple[float | None, float | None]:
    """(seconds, CPU seconds) of the last ``images - short_images`` images of the full run.

    Start-up (imports, model loading, Beam and worker start, final writes) is the same in a
    run of a few images, so the difference of the two runs is the steady-state cost.
    None when the difference is not positive (noise larger than the work).
    """
    seconds = full["wall_s"] - short["wall_s"]
    cpu = full["cpu_s"] - short["cpu_s"]
    if images <= short_images or seconds <= 0:
        return None, None
    return seconds, cpu if cpu > 0 else None


def base_row(row: str, images: int, measured: dict[str, Any], log_path: str) -> dict[str, Any]:
    """Fields every row has."""
    return {
        "id": row,
        "label": ROW_LABELS[row],
        "images": images,
        "exit_code": measured["exit_code"],
        "wall_s": _round(measured["wall_s"]),
        "images_per_s_wall": _round(_rate(images, measured["wall_s"])),
        "cpu_s": _round(measured["cpu_s"]),
        "cpu_s_per_image": _round(measured["cpu_s"] / images if images else None, 4),
        "peak_rss_mb": round(measured["peak_rss_mb"]),
        "log": log_path,
    }


def run_detect_row(
    row: str,
    corpus: Corpus,
    models: ModelChoice,
    run_dir: str,
    startup_images: int,
    extra: Sequence[str],
) -> dict[str, Any]:
    """Row 1 / 1b: `sbdn detect` on the corpus (plus a short run to take start-up out)."""
    from benchmarks import scale

    def run(images_folder: str, name: str) -> tuple[dict[str, Any], str, str]:
        output = os.path.join(run_dir, f"{name}-out")
        shutil.rmtree(output, ignore_errors=True)
        log_path = os.path.join(run_dir, f"{name}.log")
        command = detect_command(images_folder, output, models, row, extra)
        return measure_command(command, log_path), output, log_path

    short = None
    if 0 < startup_images < corpus.count:
        short, _, short_log = run(
            corpus_subset(corpus, startup_images), f"{row}-first{startup_images}"
        )
        if short["exit_code"] != 0:
            raise BenchmarkError(
                f"{row}: start-up run failed (see {short_log}):\n{_tail(short['output'])}"
            )
    measured, output, log_path = run(corpus.images, row)
    result = base_row(row, corpus.count, measured, log_path)
    result["command"] = " ".join(
        shlex.quote(part) for part in detect_command(corpus.images, output, models, row, extra)
    )
    summary = parse_detect_summary(measured["output"])
    result.update(summary)
    result["identifier_images"] = summary.get("blurry")
    result["rows_written"] = scale.count_rows(output) if measured["exit_code"] == 0 else 0
    if measured["exit_code"] != 0:
        result["error"] = _tail(measured["output"])
        return result
    if short is not None:
        seconds, cpu = steady_by_difference(measured, short, corpus.count, startup_images)
        steady_images = corpus.count - startup_images
        result.update(
            startup_images=startup_images,
            startup_run_wall_s=_round(short["wall_s"]),
            steady_s=_round(seconds),
            images_per_s_steady=_round(_rate(steady_images, seconds)),
            cpu_s_per_image_steady=_round(cpu / steady_images if cpu else None, 4),
            steady_method=STEADY_DIFFERENCE.format(k=startup_images),
        )
    else:
        result.update(
            steady_s=summary.get("job_s"),
            images_per_s_steady=_round(_rate(corpus.count, summary.get("job_s"))),
            cpu_s_per_image_steady=None,
            steady_method=STEADY_JOB_TIMER,
        )
    result["_verdicts"] = read_detect_verdicts(output)
    return result


def read_detect_verdicts(output: str) -> dict[str, tuple[float, bool]]:
    """{file name: (blur_probability, is_blurry)} from a detect run's results table."""
    import pyarrow.parquet as pq

    files = glob.glob(os.path.join(output, "results", "*", "*.parquet"))
    verdicts: dict[str, tuple[float, bool]] = {}
    for path in files:
        table = pq.read_table(path, columns=["image_uri", "blur_probability", "is_blurry"])
        for uri, probability, blurry in zip(*(table.column(i).to_pylist() for i in range(3))):
            verdicts[os.path.basename(uri)] = (probability, blurry)
    return verdicts


def run_worker_row(row: str, corpus: Corpus, spec: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Rows 2-4: run a worker in a subprocess and combine its own timings with the tree's."""
    spec = {**spec, "images": corpus.images, "result": os.path.join(run_dir, f"{row}.result.json")}
    spec_path = os.path.join(run_dir, f"{row}.spec.json")
    with open(spec_path, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    if os.path.exists(spec["result"]):
        os.remove(spec["result"])
    log_path = os.path.join(run_dir, f"{row}.log")
    command = [sys.executable, "-m", "benchmarks.throughput", "worker", row, spec_path]
    measured = measure_command(command, log_path)
    result = base_row(row, corpus.count, measured, log_path)
    result["command"] = " ".join(shlex.quote(part) for part in command)
    if measured["exit_code"] != 0 or not os.path.exists(spec["result"]):
        result["error"] = _tail(measured["output"])
        return result
    with open(spec["result"], encoding="utf-8") as handle:
        inner = json.load(handle)
    images = inner.pop("images")
    own_peak = inner.pop("self_max_rss_mb", 0.0)
    result["peak_rss_mb"] = max(result["peak_rss_mb"], round(own_peak))
    steady_s, steady_cpu = inner.pop("steady_s"), inner.pop("steady_cpu_s")
    result.update(
        images=images,
        blurry=inner.pop("blurry"),
        startup_and_exit_s=_round(measured["wall_s"] - steady_s),
        steady_s=_round(steady_s),
        images_per_s_steady=_round(_rate(images, steady_s)),
        cpu_s_per_image_steady=_round(steady_cpu / images if images else None, 4),
        steady_method=STEADY_INSIDE,
        **inner,
    )
    result["identifier_images"] = result["blurry"]
    return result


def compute_ratios(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """(1)/(2) and (1)/(3) of images/s, wall (with start-up) and steady (without)."""
    ratios = {}
    for numerator, denominator, target in RATIOS:
        if numerator not in rows or denominator not in rows:
            continue
        entry: dict[str, Any] = {"target_at_least": target}
        for measure in ("wall", "steady"):
            top = rows[numerator].get(f"images_per_s_{measure}")
            bottom = rows[denominator].get(f"images_per_s_{measure}")
            value = top / bottom if top and bottom else None
            entry[measure] = _round(value)
            entry[f"{measure}_meets_target"] = None if value is None else value >= target
        ratios[f"{numerator}/{denominator}"] = entry
    return ratios


def agreement_check(detect_row: dict[str, Any], probabilities_path: str) -> dict[str, Any]:
    """Does the tf.data loop see the images as the job does? Compare verdicts and P(blurry)."""
    with open(probabilities_path, encoding="utf-8") as handle:
        limit = json.load(handle)
    job = detect_row.get("_verdicts", {})
    common = sorted(set(job) & set(limit))
    if not common:
        return {"images_compared": 0}
    differences = [abs(job[name][0] - limit[name]) for name in common]
    agree = sum(job[name][1] == (limit[name] >= BLUR_THRESHOLD) for name in common)
    return {
        "images_compared": len(common),
        "verdicts_agree": agree,
        "max_abs_probability_difference": float(f"{max(differences):.3g}"),
    }


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def report_header(benchmark: str, args: argparse.Namespace) -> dict[str, Any]:
    """What every saved report starts with: which benchmark, when, how it was run, where."""
    return {
        "benchmark": benchmark,
        "tag": args.tag,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m benchmarks.throughput "
        + " ".join(shlex.quote(a) for a in (args.argv or [])),
        "machine": machine_info(),
    }


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory and the versions that matter for the numbers."""
    from importlib import metadata

    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                None,
            )
        info["cpu"] = model
    except OSError:
        pass
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    except (ImportError, OSError):
        pass
    for package in (
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "apache-beam",
        "opencv-python-headless",
        "numpy",
    ):
        try:
            info.setdefault("versions", {})[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return info


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = (
    ("row", lambda r: r["label"]),
    ("images", lambda r: _fmt(r["images"])),
    ("wall s", lambda r: _fmt(r["wall_s"])),
    ("img/s wall (incl. start-up)", lambda r: _fmt(r.get("images_per_s_wall"))),
    ("img/s excl. start-up", lambda r: _fmt(r.get("images_per_s_steady"))),
    ("CPU s/img", lambda r: _fmt(r.get("cpu_s_per_image"), 3)),
    ("CPU s/img excl. start-up", lambda r: _fmt(r.get("cpu_s_per_image_steady"), 3)),
    ("peak RSS MB", lambda r: _fmt(r["peak_rss_mb"])),
    ("to identifier", lambda r: _fmt(r.get("identifier_images"))),
)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _ratio_rows(ratios: dict[str, dict[str, Any]]) -> list[list[str]]:
    def mark(ok: bool | None) -> str:
        return "" if ok is None else (" (meets)" if ok else " (misses)")

    return [
        [
            name,
            _fmt(entry["wall"], 2) + mark(entry["wall_meets_target"]),
            _fmt(entry["steady"], 2) + mark(entry["steady_meets_target"]),
            f">= {entry['target_at_least']:g}",
        ]
        for name, entry in ratios.items()
    ]


RATIO_HEADERS = ("ratio of img/s", "wall (incl. start-up)", "excl. start-up", "target")


def render_markdown(report: dict[str, Any]) -> str:
    """The saved Markdown version of a throughput report."""
    machine, corpus = report["machine"], report["corpus"]
    rows = report["rows"]
    lines = [
        f"# Throughput benchmark{' (' + report['tag'] + ')' if report['tag'] else ''}",
        "",
        f"- date: {report['date']}",
        f"- machine: {machine['cores']} cores, {machine.get('cpu', '?')}, "
        f"{machine.get('memory_gib', '?')} GiB; load average at start "
        f"{machine.get('load_average_at_start', '?')}",
        f"- command: `{report['command']}`",
        f"- corpus: {corpus['count']} JPEGs, long side ~{corpus['long_side']} px, "
        f"{corpus['blurred']} partially blurred, source {corpus['source']}",
        f"- models: {report['models']['description']}",
        "",
    ]
    if report["tag"]:
        lines += [f"**{report['tag']}**: not a measurement to quote.", ""]
    table = [[fmt(row) for _, fmt in TABLE_COLUMNS] for row in rows]
    lines += [markdown_table([name for name, _ in TABLE_COLUMNS], table), ""]
    if report["ratios"]:
        lines += [markdown_table(RATIO_HEADERS, _ratio_rows(report["ratios"])), ""]
    lines += ["How each number was taken:", ""]
    for row in rows:
        lines.append(
            f"- **{row['id']}**: excl. start-up = {row.get('steady_method', '-')}"
            + (f"; FAILED: `{row['error'].splitlines()[-1]}`" if row.get("error") else "")
        )
    lines += [
        "- wall = whole subprocess, interpreter start to exit; CPU = user + sys of the "
        "process tree (RUSAGE_CHILDREN); peak RSS = sum over the tree, sampled every 0.2 s "
        "(rows 2-4: or the process's own VmHWM if larger)",
        "",
    ]
    if report.get("checks"):
        lines += ["Checks:", "", "```", json.dumps(report["checks"], indent=2), "```", ""]
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def result_paths(
    results_dir: str, prefix: str, tag: str | None, today: datetime.date | None = None
) -> tuple[str, str]:
    """(json, md) paths: <prefix>[-<tag>]-<date>-<cores>cores.{json,md}."""
    today = today or datetime.date.today()
    stem = "-".join(
        part for part in (prefix, tag, today.isoformat(), f"{os.cpu_count()}cores") if part
    )
    return os.path.join(results_dir, f"{stem}.json"), os.path.join(results_dir, f"{stem}.md")


def write_report(
    report: dict[str, Any], results_dir: str, prefix: str, markdown: str
) -> tuple[str, str]:
    os.makedirs(results_dir, exist_ok=True)
    json_path, md_path = result_paths(results_dir, prefix, report.get("tag"))
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(markdown)
    return json_path, md_path


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def resolve_models(classifier: str | None, identifier: str | None) -> ModelChoice:
    """The models to benchmark: the ones given, else the shipped defaults; validated.

    Raises:
        BenchmarkError: no shipped model for a role that was not given, or an unusable file.
    """
    from sbdn_pipeline import default_models, inference

    given = {"classifier": classifier, "identifier": identifier}
    resolved: dict[str, inference.ModelInfo] = {}
    for role, path in given.items():
        expected = ""
        if path is None:
            try:
                path, expected = default_models.default_model(role)
            except default_models.NoDefaultModelError as exc:
                raise BenchmarkError(
                    f"{exc}; pass --classifier PATH --identifier PATH (.keras files, e.g. "
                    "from `sbdn train`)"
                ) from None
        try:
            resolved[role] = inference.inspect_model(path, role, expected)
        except inference.ModelFileError as exc:
            raise BenchmarkError(f"{role}: {exc}") from None
    return ModelChoice(
        resolved["classifier"].path,
        resolved["identifier"].path,
        default=classifier is None and identifier is None,
        classifier_size=resolved["classifier"].input_size,
        identifier_size=resolved["identifier"].input_size,
    )


def _print(*parts: Any) -> None:
    print(*parts, flush=True)


def run_table(args: argparse.Namespace, models: ModelChoice, extra: Sequence[str]) -> int:
    """The main mode: every selected row on one corpus; table, JSON and Markdown."""
    corpus_spec = CorpusSpec(
        args.images, args.long_side, args.blurred_fraction, args.sharp_images, args.seed
    )
    _print(f"corpus: {corpus_spec.key()} under {args.work}")
    corpus = ensure_corpus(args.work, corpus_spec)
    _print(
        f"corpus ready: {corpus.count} images, {corpus.manifest['blurred']} partially blurred, "
        f"{corpus.manifest['total_bytes'] / 2**20:.1f} MiB"
    )
    warm_page_cache(corpus.paths())
    run_dir = os.path.join(args.work, "runs", datetime.datetime.now().strftime("%Y%m%dT%H%M%S"))
    os.makedirs(run_dir)
    selected = [row for row in ALL_ROWS if row in (args.only or ALL_ROWS)]
    rows: dict[str, dict[str, Any]] = {}
    checks: dict[str, Any] = {}
    notes: list[str] = []
    common_spec = {
        "classifier": models.classifier,
        "identifier": models.identifier,
        "batch_size": args.batch_size,
        "threshold": BLUR_THRESHOLD,
    }
    for row in selected:
        _print(f"running {row}: {ROW_LABELS[row]} ...")
        if row in DETECT_ROWS:
            result = run_detect_row(row, corpus, models, run_dir, args.startup_images, extra)
        elif row == "tfdata":
            result = run_worker_row(
                row,
                corpus,
                {
                    **common_spec,
                    "probabilities": os.path.join(run_dir, "tfdata-probabilities.json"),
                },
                run_dir,
            )
        elif row == "original":
            route, routing = original_routing(args.original_routing, rows, corpus, run_dir)
            notes.append(f"original row: {routing}")
            result = run_worker_row(
                row,
                corpus,
                {
                    **common_spec,
                    "route": route,
                    "routing": routing,
                    "original_classifier": args.original_classifier,
                    "original_identifier": args.original_identifier,
                },
                run_dir,
            )
            result["routing"] = routing
        else:
            result = run_worker_row(row, corpus, {}, run_dir)
        rows[row] = result
        status = "FAILED" if result.get("error") else "ok"
        _print(
            f"  {row}: {status}, {_fmt(result.get('images_per_s_wall'))} img/s wall, "
            f"{_fmt(result.get('images_per_s_steady'))} img/s excl. start-up, "
            f"peak RSS {result['peak_rss_mb']} MB"
        )
        if result.get("error"):
            _print(result["error"])
    probabilities = os.path.join(run_dir, "tfdata-probabilities.json")
    for row in DETECT_ROWS:
        if row in rows and os.path.exists(probabilities) and rows[row].get("_verdicts"):
            checks[f"{row} vs tfdata"] = agreement_check(rows[row], probabilities)
    for row in rows.values():
        row.pop("_verdicts", None)
    if args.extra_note:
        notes.append(args.extra_note)
    report = {
        **report_header("throughput", args),
        "corpus": {key: value for key, value in corpus.manifest.items() if key != "files"}
        | {"count": corpus.count, "folder": corpus.folder},
        "models": {
            "classifier": models.classifier,
            "identifier": models.identifier,
            "shipped_defaults": models.default,
            "input_sizes": [models.classifier_size, models.identifier_size],
            "original": [
                args.original_classifier or "resnet50 (random weights)",
                args.original_identifier or "original-encoder-decoder (random weights)",
            ],
            "description": (
                f"{'shipped ' if models.default else ''}classifier "
                f"{os.path.basename(models.classifier)} ({models.classifier_size} px), "
                f"identifier {os.path.basename(models.identifier)} "
                f"({models.identifier_size} px); batch size {args.batch_size}"
            ),
        },
        "detect_extra_args": list(extra),
        "rows": list(rows.values()),
        "ratios": compute_ratios(rows),
        "checks": checks,
        "notes": notes,
        "run_folder": run_dir,
    }
    markdown = render_markdown(report)
    json_path, md_path = write_report(report, args.results_dir, "throughput", markdown)
    table = [[fmt(row) for _, fmt in TABLE_COLUMNS] for row in rows.values()]
    _print("\n" + text_table([name for name, _ in TABLE_COLUMNS], table))
    if report["ratios"]:
        _print("\n" + text_table(RATIO_HEADERS, _ratio_rows(report["ratios"])))
    if checks:
        _print("\nchecks: " + json.dumps(checks))
    _print(f"\nsaved {json_path}\n      {md_path}")
    return 1 if any(row.get("error") for row in rows.values()) else 0


def original_routing(
    policy: str, rows: dict[str, dict[str, Any]], corpus: Corpus, run_dir: str
) -> tuple[list[str] | None, str]:
    """Which images the original approach sends to its identifier, and a sentence saying so.

    Random weights make ResNet-50's verdicts meaningless, so by default the cascade follows
    the images the benchmarked classifier called blurry in the tf.data row (same work as a
    trained original pair with the same verdicts); without that row, the corpus's blurred set.
    """
    probabilities = os.path.join(run_dir, "tfdata-probabilities.json")
    if policy in ("auto", "tfdata") and "tfdata" in rows and os.path.exists(probabilities):
        with open(probabilities, encoding="utf-8") as handle:
            scores = json.load(handle)
        route = sorted(name for name, p in scores.items() if p >= BLUR_THRESHOLD)
        return route, (
            f"identifier runs on the {len(route)} images the benchmarked classifier "
            "called blurry in the tf.data row"
        )
    if policy == "tfdata":
        raise BenchmarkError("--original-routing tfdata needs the tfdata row in the same run")
    if policy == "own":
        return None, "identifier runs where the original classifier's own P(blurry) >= 0.5"
    route = corpus.blurred_names()
    return route, (
        f"identifier runs on the {len(route)} images the corpus blurred "
        f"({corpus.manifest['blurred_fraction']:.0%})"
    )


def run_memory_mode(args: argparse.Namespace, models: ModelChoice, extra: Sequence[str]) -> int:
    """Row 1 on 1,000 and 10,000 small images: does peak RSS stay flat (streaming)?"""
    from benchmarks import scale

    selected = [row for row in DETECT_ROWS if row in (args.only or ("detect",))]
    run_dir = os.path.join(
        args.work, "runs", "memory-" + datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    )
    os.makedirs(run_dir)
    rows = []
    for count in args.memory_images:
        corpus = ensure_corpus(
            args.work,
            CorpusSpec(
                count, args.memory_long_side, args.blurred_fraction, args.sharp_images, args.seed
            ),
        )
        warm_page_cache(corpus.paths())
        for row in selected:
            _print(f"running {row} on {count} images of ~{args.memory_long_side} px ...")
            output = os.path.join(run_dir, f"{row}-{count}-out")
            log_path = os.path.join(run_dir, f"{row}-{count}.log")
            measured = measure_command(
                detect_command(corpus.images, output, models, row, extra), log_path
            )
            result = base_row(row, count, measured, log_path)
            result.update(parse_detect_summary(measured["output"]))
            result["rows_written"] = scale.count_rows(output) if measured["exit_code"] == 0 else 0
            if measured["exit_code"] != 0:
                result["error"] = _tail(measured["output"])
            rows.append(result)
            _print(
                f"  peak RSS {result['peak_rss_mb']} MB, {result['images_per_s_wall']} img/s, "
                f"rows {result['rows_written']}/{count}"
            )
    ratios = {}
    for row in selected:
        mine = [r for r in rows if r["id"] == row and not r.get("error")]
        if len(mine) >= 2:
            value = mine[-1]["peak_rss_mb"] / max(1, mine[0]["peak_rss_mb"])
            ratios[row] = {
                "images": [mine[0]["images"], mine[-1]["images"]],
                "peak_rss_ratio": round(value, 3),
                "target_at_most": MEMORY_TARGET_RATIO,
                "meets_target": value <= MEMORY_TARGET_RATIO,
            }
    report = {
        **report_header("throughput-memory", args),
        "long_side": args.memory_long_side,
        "rows": rows,
        "peak_rss_ratios": ratios,
        "run_folder": run_dir,
    }
    headers = ("row", "images", "wall s", "img/s wall", "peak RSS MB", "rows written")
    table = [
        [
            r["label"],
            str(r["images"]),
            _fmt(r["wall_s"]),
            _fmt(r["images_per_s_wall"]),
            str(r["peak_rss_mb"]),
            str(r["rows_written"]),
        ]
        for r in rows
    ]
    ratio_lines = [
        f"- {row}: peak RSS at {v['images'][1]:,} / at {v['images'][0]:,} images = "
        f"{v['peak_rss_ratio']:.2f} (target <= {MEMORY_TARGET_RATIO}: "
        f"{'meets' if v['meets_target'] else 'misses'})"
        for row, v in ratios.items()
    ]
    markdown = "\n".join(
        [
            f"# Memory: sbdn detect on few vs many small images"
            f"{' (' + args.tag + ')' if args.tag else ''}",
            "",
            f"- date: {report['date']}; {report['machine']['cores']} cores",
            f"- command: `{report['command']}`",
            "",
            markdown_table(headers, table),
            "",
            *ratio_lines,
            "",
        ]
    )
    json_path, md_path = write_report(report, args.results_dir, "throughput-memory", markdown)
    _print("\n" + text_table(headers, table))
    for line in ratio_lines:
        _print(line)
    _print(f"\nsaved {json_path}\n      {md_path}")
    ok = all(not r.get("error") and r["rows_written"] == r["images"] for r in rows)
    return 0 if ok else 1


PROJECT_CODE = ("sbdn_pipeline/", "beam_jobs/")


def summarise_speedscope(path: str, top: int = 25) -> dict[str, Any]:
    """Top costs in a py-spy speedscope profile, in sampled seconds (all processes and threads).

    Returns:
        ``self``: functions by own time; ``files``: source files by own time;
        ``project``: our own functions (sbdn_pipeline/, beam_jobs/) by inclusive time, which
        says which stage of the job the time goes to; ``total_s``: all samples; ``wall_s``:
        the longest thread's profile duration.
    """
    with open(path, encoding="utf-8") as handle:
        profile = json.load(handle)
    frames = profile["shared"]["frames"]

    def where(frame: dict[str, Any]) -> str:
        file = frame.get("file") or "?"
        return os.path.relpath(file, ROOT) if file.startswith(ROOT + os.sep) else file

    labels = [f"{frame['name']} ({where(frame)})" for frame in frames]
    files = [where(frame) for frame in frames]
    # py-spy --subprocesses adds a synthetic root frame per process: not a function.
    synthetic = {
        i
        for i, frame in enumerate(frames)
        if frame["name"].startswith("process ") and not frame.get("file")
    }
    own: dict[str, float] = {}
    own_files: dict[str, float] = {}
    project: dict[str, float] = {}
    total = 0.0
    for part in profile["profiles"]:
        for stack, weight in zip(part.get("samples", []), part.get("weights", [])):
            stack = [index for index in stack if index not in synthetic]
            if not stack:
                continue
            total += weight
            leaf = stack[-1]  # speedscope stacks run from the root to the leaf
            own[labels[leaf]] = own.get(labels[leaf], 0.0) + weight
            own_files[files[leaf]] = own_files.get(files[leaf], 0.0) + weight
            for label in {labels[i] for i in stack if files[i].startswith(PROJECT_CODE)}:
                project[label] = project.get(label, 0.0) + weight

    def best(table: dict[str, float]) -> list[tuple[str, float]]:
        return sorted(table.items(), key=lambda item: -item[1])[:top]

    durations = [
        part.get("endValue", 0) - part.get("startValue", 0) for part in profile["profiles"]
    ]
    return {
        "self": best(own),
        "files": best(own_files),
        "project": best(project),
        "total_s": round(total, 2),
        "wall_s": round(max(durations, default=0.0), 2),
    }


PROFILE_TABLES = (
    ("project", "Our own functions by inclusive time (which stage the time goes to)"),
    ("files", "Source files by self time"),
    ("self", "Functions by self time"),
)


def find_py_spy() -> str:
    """The py-spy executable (next to this Python first)."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    found = beside if os.path.exists(beside) else shutil.which("py-spy")
    if not found:
        raise BenchmarkError("--profile needs py-spy: pip install py-spy")
    return found


def run_profile(args: argparse.Namespace, models: ModelChoice, extra: Sequence[str]) -> int:
    """Row 1 under py-spy: a speedscope (or flame graph SVG) file and the top costs."""
    py_spy = find_py_spy()
    corpus = ensure_corpus(
        args.work,
        CorpusSpec(
            args.images, args.long_side, args.blurred_fraction, args.sharp_images, args.seed
        ),
    )
    warm_page_cache(corpus.paths())
    run_dir = os.path.join(
        args.work, "runs", "profile-" + datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    )
    os.makedirs(run_dir)
    os.makedirs(args.results_dir, exist_ok=True)
    selected = [row for row in DETECT_ROWS if row in (args.only or ("detect",))]
    status = 0
    for row in selected:
        json_path, _ = result_paths(args.results_dir, f"profile-{row}", args.tag)
        suffix = ".speedscope.json" if args.profile_format == "speedscope" else ".svg"
        profile_path = json_path[: -len(".json")] + suffix
        output = os.path.join(run_dir, f"{row}-out")
        command = [
            py_spy,
            "record",
            "--subprocesses",
            "--rate",
            str(args.profile_rate),
            "--format",
            args.profile_format,
            "--output",
            profile_path,
            "--",
            *detect_command(corpus.images, output, models, row, extra),
        ]
        _print(f"profiling {row} on {corpus.count} images: {' '.join(command)}")
        measured = measure_command(command, os.path.join(run_dir, f"{row}.log"))
        if measured["exit_code"] != 0 or not os.path.exists(profile_path):
            _print(f"{row}: profiling failed:\n{_tail(measured['output'])}")
            status = 1
            continue
        _print(f"  wrote {profile_path} ({measured['wall_s']:.1f} s under py-spy)")
        if args.profile_format != "speedscope":
            continue
        summary = summarise_speedscope(profile_path)
        lines = [
            f"# Profile of {ROW_LABELS[row]}",
            "",
            f"{corpus.count} images, ~{args.long_side} px; py-spy at {args.profile_rate} Hz, "
            f"all processes and threads, idle excluded: {summary['total_s']} s of samples over "
            f"{summary['wall_s']} s of profile (a thread blocked in a TensorFlow op counts as "
            "busy). Start-up (imports, model loading) is included: compare with a smaller "
            "--images to see it. "
            f"Open `{os.path.basename(profile_path)}` in https://www.speedscope.app/.",
            "",
        ]
        for kind, title in PROFILE_TABLES:
            lines += [
                f"## {title}",
                "",
                markdown_table(
                    ("file" if kind == "files" else "function", "seconds", "share"),
                    [
                        [label, f"{seconds:.2f}", f"{seconds / max(summary['total_s'], 1e-9):.0%}"]
                        for label, seconds in summary[kind]
                    ],
                ),
                "",
            ]
        summary_path = profile_path[: -len(".speedscope.json")] + ".md"
        with open(summary_path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))
        _print("\n".join(lines))
        _print(f"  summary: {summary_path}")
    return status


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description="Throughput of sbdn detect next to a hand-written tf.data loop, the "
        "original research approach and OpenCV's Laplacian variance, on one corpus. "
        "Arguments after `--` are passed to the sbdn detect rows.",
    )
    parser.add_argument("--images", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument(
        "--sharp-images",
        metavar="PATH",
        help="folder of photos to derive the corpus from (crops, resizes, "
        "partial blur); default: generated street-like scenes",
    )
    parser.add_argument(
        "--long-side",
        type=int,
        default=1024,
        help="long side of the corpus images, px (default 1024; each is 90-100%%)",
    )
    parser.add_argument(
        "--blurred-fraction",
        type=float,
        default=0.3,
        help="share of images with a blurred region (default 0.3)",
    )
    parser.add_argument(
        "--classifier", metavar="PATH", help="classifier .keras file (default: the shipped model)"
    )
    parser.add_argument(
        "--identifier", metavar="PATH", help="identifier .keras file (default: the shipped model)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="batch size of the tf.data row; passed to detect only when not "
        f"the default {DEFAULT_BATCH_SIZE}",
    )
    parser.add_argument(
        "--work",
        metavar="DIR",
        default=os.path.join(tempfile.gettempdir(), "sbdn-throughput"),
        help="corpus cache and run outputs (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ALL_ROWS,
        metavar="ROW",
        help=f"run only these rows: {', '.join(ALL_ROWS)}",
    )
    parser.add_argument(
        "--startup-images",
        type=int,
        default=8,
        metavar="K",
        help="detect rows also run on the first K images, to take start-up out "
        "by difference (0: use the job's own timer instead; default 8)",
    )
    parser.add_argument(
        "--original-routing",
        choices=("auto", "tfdata", "corpus", "own"),
        default="auto",
        help="which images the original approach sends to its identifier: the "
        "ones the benchmarked classifier called blurry in the tf.data row "
        "(tfdata), the corpus's blurred ones (corpus), or its own verdicts "
        "(own); auto = tfdata when that row runs, else corpus",
    )
    parser.add_argument(
        "--memory-mode",
        action="store_true",
        help="run row 1 only, on --memory-images small images, report peak RSS",
    )
    parser.add_argument("--memory-images", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--memory-long-side", type=int, default=256)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run row 1 (or --only detect-mp) under py-spy, write the profile "
        "and its top functions to the results folder",
    )
    parser.add_argument(
        "--profile-format", choices=("speedscope", "flamegraph"), default="speedscope"
    )
    parser.add_argument("--profile-rate", type=int, default=50, help="samples per second")
    parser.add_argument(
        "--results-dir",
        default=DEFAULT_RESULTS_DIR,
        help="where the JSON and Markdown go (default: benchmarks/results)",
    )
    parser.add_argument(
        "--tag", default=None, help="label in the file names and report, e.g. 'smoke'"
    )
    parser.add_argument(
        "--note",
        dest="extra_note",
        default=None,
        help="a sentence saved with the report (e.g. what else ran)",
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    # Hidden: tiny stand-ins for ResNet-50 / the encoder-decoder so the smoke test is fast.
    parser.add_argument("--original-classifier", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--original-identifier", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 a row failed, 2 bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        return worker_main(argv[1:])
    parser = build_parser()
    ours, extra = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    args = parser.parse_args(ours)
    args.argv = argv
    if args.batch_size != DEFAULT_BATCH_SIZE:
        extra = ["--batch-size", str(args.batch_size), *extra]
    try:
        if args.images < 1 or not 0 <= args.blurred_fraction <= 1:
            raise BenchmarkError("--images must be >= 1 and --blurred-fraction in [0, 1]")
        if args.sharp_images:
            list_photos(args.sharp_images)  # fail before loading models
        for path in (args.original_classifier, args.original_identifier):
            if path and not os.path.exists(path):
                raise BenchmarkError(f"model file not found: {path}")
        if args.memory_mode and args.profile:
            raise BenchmarkError("--memory-mode and --profile are separate runs; pick one")
        if (
            (args.memory_mode or args.profile)
            and args.only
            and not set(args.only) & set(DETECT_ROWS)
        ):
            raise BenchmarkError("--memory-mode and --profile run the detect rows only")
        os.makedirs(args.work, exist_ok=True)
        models = resolve_models(args.classifier, args.identifier)
        if args.memory_mode:
            return run_memory_mode(args, models, extra)
        if args.profile:
            return run_profile(args, models, extra)
        return run_table(args, models, extra)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
