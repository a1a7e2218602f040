"""The batches a training run learns from and is validated on.

:func:`make_datasets` turns a :class:`~sbdn_pipeline.training.config.TrainConfig` into the
shared reader's datasets (:mod:`sbdn_pipeline.training.reader`), mixes in whole letterboxed
photos, adds the configured augmentation and, for a classifier trained with a blur-map output,
derives both of its targets from the masks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from sbdn_pipeline.training import reader
from sbdn_pipeline.training.config import TrainConfig
from sbdn_pipeline.training.defaults import IDENTIFIER
from sbdn_pipeline.training.losses import BLUR_MAP_OUTPUT, CLASSIFIER_OUTPUT, has_blur_map_output

# Colour jitter and turns draw from seeds of their own, so they do not repeat the crop stream's.
AUGMENT_SEED_OFFSET = 1_000_003


def check_data_set(config: TrainConfig) -> list[str] | None:
    """Fail now on a data set without train or val shards; return the source groups to use.

    Raises:
        FileNotFoundError: no shards, or no manifest where exclusions need one.
        ValueError: exclusions that leave no source group.
    """
    for split in ("train", "val"):
        reader.list_shards(config.data_dir, split)
    return resolve_source_groups(
        config.data_dir, config.source_groups, config.exclude_source_groups
    )


def resolve_source_groups(
    data_dir: str,
    source_groups: Sequence[str] | None,
    exclude_source_groups: Sequence[str] | None,
) -> list[str] | None:
    """Which source groups to train on (None = all).

    Explicit ``source_groups`` win. Otherwise every group listed in the data set manifest is
    used except ``exclude_source_groups`` (group names or name prefixes; none by default).
    """
    if source_groups:
        return list(source_groups)
    if not exclude_source_groups:
        return None
    available = manifest_source_groups(data_dir)
    if not available:
        raise ValueError(
            f"cannot exclude source groups {list(exclude_source_groups)}: the manifest in "
            f"{data_dir} lists no source groups; pass source_groups explicitly"
        )
    kept = [
        group
        for group in available
        if not any(group == prefix or group.startswith(prefix) for prefix in exclude_source_groups)
    ]
    if not kept:
        raise ValueError(
            f"excluding {list(exclude_source_groups)} leaves no source group of {available}"
        )
    return kept


def manifest_source_groups(data_dir: str) -> list[str]:
    """Source groups counted in ``data_dir/manifest.json`` (any split), sorted."""
    from sbdn_pipeline import features

    path = os.path.join(data_dir, features.MANIFEST_JSON)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"no {features.MANIFEST_JSON} in {data_dir}: "
            "is it a data set made by sbdn make-dataset?"
        )
    with tf.io.gfile.GFile(path, "r") as handle:
        manifest = json.load(handle)
    groups: set[str] = set()
    for counts in (manifest.get("splits") or {}).values():
        groups.update(str(group) for group in (counts.get(features.SOURCE_GROUP) or {}))
    return sorted(groups)


def make_datasets(
    config: TrainConfig,
    model: keras.Model,
    source_groups: list[str] | None,
    epochs_done: int,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(training batches, validation batches) with the targets ``model`` learns.

    ``epochs_done`` shifts every seed, so a resumed run does not replay the shuffle order and
    crops of the epochs it already did.
    """
    seed = config.seed + epochs_done
    with_blur_map = has_blur_map_output(model)
    mask_stride = target_mask_stride(model, config.image_size)

    def read(split: str, *, training: bool, repeat: bool) -> tf.data.Dataset:
        data = reader.make_training_dataset(
            config.data_dir,
            split,
            # A classifier taught where the blur is reads masks (one value per blur-map cell).
            task=IDENTIFIER if with_blur_map else config.task,
            image_size=config.image_size,
            batch_size=config.batch_size,
            training=training,
            seed=seed,
            source_groups=source_groups,
            positives_only=config.positives_only,
            mask_downsample=mask_stride,
            cache=config.cache,
            shuffle_buffer=config.shuffle_buffer,
            repeat=repeat,
            max_crop_scale=config.max_crop_scale,
        )
        return data.map(label_and_blur_map) if with_blur_map else data

    train_data = read("train", training=True, repeat=config.steps_per_epoch is not None)
    if config.letterbox_fraction > 0:
        letterboxed = read("train", training=False, repeat=True)
        train_data = mix_in_letterboxed(
            train_data, letterboxed, config.letterbox_fraction,
            batch_size=config.batch_size, seed=seed,
        )
    augment_seed = AUGMENT_SEED_OFFSET + seed
    train_data = reader.jitter_colour_batches(train_data, config.colour_jitter, seed=augment_seed)
    if config.turn_and_flip:
        train_data = reader.turn_and_flip_batches(train_data, seed=augment_seed + 1)
    return train_data, read("val", training=False, repeat=False)


def target_mask_stride(model: keras.Model, image_size: int) -> int:
    """Input pixels per target mask pixel: the identifier's stride, or one blur-map cell."""
    if not has_blur_map_output(model):
        return model.mask_stride
    map_side = int(model.outputs[1].shape[1])
    if image_size % map_side:
        raise ValueError(
            f"image_size {image_size} is not a multiple of the blur-map side {map_side}: "
            "use a multiple of 32"
        )
    return image_size // map_side


def label_and_blur_map(
    images: tf.Tensor, masks: tf.Tensor
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Identifier batches -> (images, {classifier label, blur map}) for deep supervision.

    The label follows the reader's classifier rule: blurry when at least
    ``reader.DEFAULT_MIN_BLURRED_FRACTION`` of the view is blurred (area-averaged cells keep
    the blurred fraction of the whole view).
    """
    blurred = tf.reduce_mean(masks, axis=[1, 2, 3])
    labels = tf.cast(blurred >= reader.DEFAULT_MIN_BLURRED_FRACTION, tf.float32)[:, tf.newaxis]
    return images, {CLASSIFIER_OUTPUT: labels, BLUR_MAP_OUTPUT: masks}


def mix_in_letterboxed(
    crops: tf.data.Dataset,
    letterboxed: tf.data.Dataset,
    fraction: float,
    *,
    batch_size: int,
    seed: int,
) -> tf.data.Dataset:
    """Batches drawing each example from ``letterboxed`` with probability ``fraction``.

    ``crops`` sets the epoch: the mix ends when it does (``letterboxed`` repeats forever).
    The letterboxed stream comes in file order, so it is shuffled a little before mixing.
    """
    whole = letterboxed.unbatch().shuffle(4 * batch_size, seed=seed)
    mixed = tf.data.Dataset.sample_from_datasets(
        [crops.unbatch(), whole],
        weights=[1.0 - fraction, fraction],
        seed=seed,
        stop_on_empty_dataset=True,
    )
    return mixed.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
