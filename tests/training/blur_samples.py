"""Tiny generated blur examples for the training and evaluation tests (no photos needed)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A sharp random texture: pixel noise over a smooth colour gradient, uint8 (H, W, 3)."""
    base = rng.uniform(40, 200, size=3)
    gradient = np.linspace(-30, 30, width)[np.newaxis, :, np.newaxis]
    noise = rng.normal(0, 45, size=(height, width, 3))
    return np.clip(base + gradient + noise, 0, 255).astype("uint8")


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an RGB uint8 image."""
    return np.clip(
        ndimage.gaussian_filter(image.astype("float32"), (sigma, sigma, 0)), 0, 255
    ).astype("uint8")


def example(
    rng: np.random.Generator, height: int, width: int, blurred: bool, sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (H, W, 3), mask float32 (H, W, 1)): sharp, or blurred on its right part."""
    image = texture(rng, height, width)
    mask = np.zeros((height, width, 1), dtype="float32")
    if blurred:
        start = int(rng.integers(0, width // 2))
        image[:, start:] = blur(image, sigma)[:, start:]
        mask[:, start:] = 1.0
    return image, mask


def classifier_arrays(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 (N, S, S, 3) in [0, 255] and labels float32 (N, 1), half blurred."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(count):
        blurred = index % 2 == 1
        image, _ = example(rng, size, size, blurred)
        images.append(image)
        labels.append([float(blurred)])
    return np.asarray(images, "float32"), np.asarray(labels, "float32")


def identifier_arrays(
    count: int, size: int, mask_stride: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Blurred images float32 (N, S, S, 3) and masks float32 (N, S/k, S/k, 1) (area-averaged)."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(count):
        image, mask = example(rng, size, size, True)
        side = size // mask_stride
        pooled = mask[..., 0].reshape(side, mask_stride, side, mask_stride).mean(axis=(1, 3))
        images.append(image)
        masks.append(pooled[..., np.newaxis])
    return np.asarray(images, "float32"), np.asarray(masks, "float32")


def write_dataset(
    data_dir: str,
    examples_per_split: dict[str, int],
    *,
    groups: tuple[str, ...] = ("urban100", "bsds500_train"),
    sizes: tuple[tuple[int, int], ...] = ((48, 64), (64, 48), (56, 56)),
    seed: int = 0,
) -> dict[str, list[dict]]:
    """Write a tiny data set in the layout of ``sbdn make-dataset`` (shards + manifest.json).

    Odd examples are blurred on a right-hand part (kinds alternate gaussian/motion), even ones
    are sharp; groups change every two examples (so each has both labels) and sizes cycle.
    Returns the records written, per split.
    """
    import json
    import os

    import tensorflow as tf

    from sbdn_pipeline import features

    rng = np.random.default_rng(seed)
    written: dict[str, list[dict]] = {}
    manifest_splits: dict[str, dict] = {}
    for split, count in examples_per_split.items():
        records = []
        for index in range(count):
            height, width = sizes[index % len(sizes)]
            blurred = index % 2 == 1
            sigma = 1.5 + (index % 3)
            image, mask = example(rng, height, width, blurred, sigma)
            kind = ("gaussian", "motion")[(index // 2) % 2] if blurred else features.NO_BLUR
            records.append(
                {
                    features.IMAGE: features.encode_image(image),
                    features.MASK: features.encode_mask(mask[..., 0]),
                    features.LABEL: int(blurred),
                    features.BLUR_KIND: kind,
                    features.STRENGTH: sigma if blurred else 0.0,
                    features.REGION_SHAPE: "side" if blurred else features.NO_BLUR,
                    features.AREA_FRACTION: float(mask.mean()),
                    features.SOURCE_ID: f"{split}{index:04d}",
                    features.SOURCE_GROUP: groups[(index // 2) % len(groups)],
                    features.SPLIT: split,
                    features.HEIGHT: height,
                    features.WIDTH: width,
                    features.VARIANT: index % 2,
                    features.DEGRADATIONS: "",
                }
            )
        os.makedirs(os.path.join(data_dir, split), exist_ok=True)
        path = f"{features.shard_prefix(data_dir, split)}-00000-of-00001{features.SHARD_SUFFIX}"
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for record in records:
                writer.write(features.make_example(record).SerializeToString())
        written[split] = records
        group_counts: dict[str, int] = {}
        for record in records:
            group_counts[record[features.SOURCE_GROUP]] = (
                group_counts.get(record[features.SOURCE_GROUP], 0) + 1
            )
        manifest_splits[split] = {"examples": count, features.SOURCE_GROUP: group_counts}
    with open(os.path.join(data_dir, features.MANIFEST_JSON), "w", encoding="utf-8") as handle:
        json.dump({"format_version": 1, "splits": manifest_splits}, handle)
    return written


def save_constant_models(
    folder: str, size: int, logit: float = 20.0, mask_stride: int = 4
) -> dict[str, str]:
    """A classifier and an identifier that answer sigmoid(logit) whatever the image.

    With a large logit they call everything blurry, which makes every metric computable by
    hand from the truth alone.
    """
    import os

    import keras

    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    decide = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(logit),
    )
    classifier = keras.Model(inputs, decide(pooled))
    per_block = keras.layers.Conv2D(
        1,
        mask_stride,
        strides=mask_stride,
        activation="sigmoid",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(logit),
    )
    inputs = keras.Input((size, size, 3))
    identifier = keras.Model(inputs, per_block(inputs))
    paths = {
        "classifier": os.path.join(folder, "constant_classifier.keras"),
        "identifier": os.path.join(folder, "constant_identifier.keras"),
    }
    classifier.save(paths["classifier"])
    identifier.save(paths["identifier"])
    return paths


def save_energy_models(folder: str, size: int, mask_stride: int = 4) -> dict[str, str]:
    """Hand-set Laplacian-energy models: low local detail means blurred (no training needed).

    The mean |Laplacian| of the grey image is ~87 grey levels on the sharp texture of
    :func:`texture` and 1-3 where it is blurred. The identifier splits 4x4 blocks at 25; the
    classifier splits the image mean at 55 (a sharp image letterboxed with a quarter of
    padding still averages ~65, one blurred on half its width or more at most ~45).
    """
    import os

    import keras

    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)

    def energy(inputs):
        grey = keras.layers.Conv2D(
            1, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(1 / 3)
        )
        # +L and -L: after ReLU their sum is |L|.
        edges = keras.layers.Conv2D(2, 3, padding="same", use_bias=False)
        out = keras.layers.ReLU()(edges(grey(inputs)))
        edges.set_weights([np.stack([laplacian, -laplacian], axis=-1)[:, :, None, :]])
        return out

    inputs = keras.Input((size, size, 3))
    local = keras.layers.AveragePooling2D(mask_stride)(energy(inputs))
    per_pixel = keras.layers.Conv2D(1, 1, activation="sigmoid")
    identifier = keras.Model(inputs, per_pixel(local))
    per_pixel.set_weights([np.full((1, 1, 2, 1), -0.2, np.float32), np.array([5.0], np.float32)])

    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(energy(inputs))
    decide = keras.layers.Dense(1, activation="sigmoid")
    classifier = keras.Model(inputs, decide(pooled))
    decide.set_weights([np.full((2, 1), -0.2, np.float32), np.array([11.0], np.float32)])
    paths = {
        "classifier": os.path.join(folder, "energy_classifier.keras"),
        "identifier": os.path.join(folder, "energy_identifier.keras"),
    }
    classifier.save(paths["classifier"])
    identifier.save(paths["identifier"])
    return paths
