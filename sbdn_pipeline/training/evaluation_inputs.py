"""What the evaluation job reads: data set records, folder labels and truth masks, and the
baseline thresholds fitted on a data set split."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from sbdn_pipeline import features
from sbdn_pipeline.geometry import resize_mask
from sbdn_pipeline.training import baselines, metrics
from sbdn_pipeline.training.scorers import Calibration

SHARP_FOLDER_NAMES = ("sharp",)
BLURRY_FOLDER_NAMES = ("blurry", "blurred")


# --- data sets --------------------------------------------------------------------------------


def is_dataset(path: str) -> bool:
    """True if ``path`` is a data set folder written by ``sbdn make-dataset``."""
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(path, features.MANIFEST_JSON)) or any(
        tf.io.gfile.glob(features.shard_pattern(path, split)) for split in features.SPLITS
    )


def check_dataset_split(path: str, split: str, what: str) -> None:
    """Fail early, in one line, when ``path`` is not a data set or lacks ``split``."""
    import tensorflow as tf

    if not is_dataset(path):
        raise ValueError(f"{what} {path}: not a data set written by `sbdn make-dataset`")
    if not tf.io.gfile.glob(features.shard_pattern(path, split)):
        raise ValueError(f"{what} {path}: the data set has no {split} split")


def iterate_records(
    data_dir: str, split: str, max_examples: int | None = None
) -> Iterator[dict[str, Any]]:
    """Parsed records of one split (the first ``max_examples``), undecoded: image and mask
    stay encoded bytes."""
    import tensorflow as tf

    from sbdn_pipeline.training import reader

    files = reader.list_shards(data_dir, split)
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").map(reader.parse_serialized)
    for record in itertools.islice(records.as_numpy_iterator(), max_examples):
        yield {
            key: value.decode("utf-8")
            if isinstance(value, bytes) and key not in (features.IMAGE, features.MASK)
            else value
            for key, value in record.items()
        }


def expected_examples(data_dir: str, split: str, max_examples: int | None) -> int | None:
    """How many examples an evaluation of ``split`` will see (for progress), None: unknown."""
    try:
        with open(os.path.join(data_dir, features.MANIFEST_JSON), encoding="utf-8") as handle:
            total = int(json.load(handle)["splits"][split]["examples"])
    except (OSError, KeyError, TypeError, ValueError):
        total = None
    if max_examples is not None:
        total = min(total or max_examples, max_examples)
    return total


def native_pixels(data: bytes) -> np.ndarray:
    """An image's pixels at its stored size, decoded as the detect job decodes."""
    from sbdn_pipeline import images

    return images.decode_image(data).pixels


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` items in order (the last one shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def calibrate_baselines(data_dir: str, split: str, max_examples: int | None = None) -> Calibration:
    """Choose each image-level baseline's threshold for the best accuracy on ``split``.

    Returns:
        {baseline name: {"data", "split", "n", "threshold", "accuracy_on_split"}}.
    """
    scorers = baselines.image_level_baselines()
    labels: list[int] = []
    scores: dict[str, list[float]] = {baseline.name: [] for baseline in scorers}
    for record in iterate_records(data_dir, split, max_examples):
        labels.append(int(record[features.LABEL]))
        native = native_pixels(record[features.IMAGE])
        for baseline in scorers:
            scores[baseline.name].append(baseline.compute(native))
    if not labels:
        raise ValueError(f"the {split} split of {data_dir} has no examples to calibrate on")
    calibration = {}
    for name, values in scores.items():
        threshold = metrics.best_accuracy_threshold(labels, values)
        calibration[name] = {
            "data": data_dir,
            "split": split,
            "n": len(labels),
            "threshold": threshold,
            "accuracy_on_split": metrics.accuracy(labels, values, threshold),
        }
    return calibration


def fit_baseline_thresholds(
    data_dir: str, split: str, log: Callable[[str], None], checked_as: str | None = None
) -> Calibration:
    """:func:`calibrate_baselines`, saying so; ``checked_as`` (an option's name): first fail
    in one line naming it when ``data_dir`` is not a data set with that split."""
    if checked_as:
        check_dataset_split(data_dir, split, checked_as)
    log(f"fitting baseline thresholds on the {split} split of {data_dir}")
    return calibrate_baselines(data_dir, split)


# --- folders of images ------------------------------------------------------------------------


def label_from_path(path: str) -> int | None:
    """1 if a folder in the path is named blurry/blurred, 0 if one is named sharp, else None."""
    parts = [part.lower() for part in path.replace("\\", "/").split("/")[:-1]]
    for part in reversed(parts):
        if part in BLURRY_FOLDER_NAMES:
            return 1
        if part in SHARP_FOLDER_NAMES:
            return 0
    return None


def match_masks(masks_dir: str, uris: list[str]) -> dict[str, str]:
    """Pair each ``DIR/<stem>.png`` with the image ``<stem>.*``; fail on any loose end.

    Returns:
        {image URI: mask path}.

    Raises:
        ValueError: one line naming the mask that has no image, more than one image, is not
            a PNG, or cannot be read.
    """
    from PIL import Image

    if not os.path.isdir(masks_dir):
        raise ValueError(f"--masks {masks_dir}: not a folder")
    by_stem: dict[str, list[str]] = {}
    for uri in uris:
        by_stem.setdefault(os.path.splitext(os.path.basename(uri))[0], []).append(uri)
    found = {}
    for entry in sorted(os.listdir(masks_dir)):
        path = os.path.join(masks_dir, entry)
        if entry.startswith(".") or os.path.isdir(path):
            continue
        stem, extension = os.path.splitext(entry)
        if extension.lower() != ".png":
            raise ValueError(f"mask {path}: masks must be PNG files named <image stem>.png")
        matches = by_stem.get(stem, [])
        if not matches:
            raise ValueError(f"mask {path} matches no image (no input file named {stem}.*)")
        if len(matches) > 1:
            raise ValueError(
                f"mask {path} matches {len(matches)} images ({', '.join(matches[:3])}); "
                "masks are matched by file name, so those images need distinct names"
            )
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as exc:  # PIL raises many types for broken files
            raise ValueError(f"mask {path} is not a readable PNG ({exc})") from exc
        found[matches[0]] = path
    if not found:
        raise ValueError(f"--masks {masks_dir}: no PNG masks in the folder")
    return found


def read_mask(path: str, height: int, width: int) -> np.ndarray:
    """A truth mask as float32 (height, width) in [0, 1] (white = blurred), resized if needed."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in ("I", "I;16", "I;16B", "I;16L"):
                grey = np.asarray(image, dtype="float32") / 65535.0
            else:
                grey = np.asarray(image.convert("L"), dtype="float32") / 255.0
    except Exception as exc:  # PIL raises many types for broken files
        raise ValueError(f"mask {path} is not a readable PNG ({exc})") from exc
    return np.clip(resize_mask(grey, height, width), 0.0, 1.0)
