"""tf.data reader of the synthetic data sets written by ``sbdn make-dataset``.

Three levels:

* :func:`list_shards` - the gzip TFRecord files of one split.
* :func:`read_examples` - every example decoded at its stored (native) size, in file order;
  for evaluation at native size and for tools.
* :func:`make_training_dataset` - batched (images, targets) for Keras ``fit``/``evaluate``,
  with augmentation when ``training=True``.

The feature names and layout come from :mod:`sbdn_pipeline.features`, shared with the writer.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from sbdn_pipeline import features, geometry

TASKS = ("classifier", "identifier")

# A training crop counts as blurry when at least this fraction of it is blurred: a crop that
# misses the blurred region of a partially blurred photo is a sharp example.
DEFAULT_MIN_BLURRED_FRACTION = 0.02


def list_shards(data_dir: str, split: str) -> list[str]:
    """Sorted shard paths of one split (local or any file system TensorFlow can read).

    Raises:
        ValueError: if ``split`` is not train/val/test.
        FileNotFoundError: if the split has no shards.
    """
    if split not in features.SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {features.SPLITS}")
    pattern = features.shard_pattern(data_dir, split)
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f"no TFRecord shards match '{pattern}'; is '{data_dir}' a data set written by "
            "`sbdn make-dataset`?"
        )
    return files


def parse_serialized(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse one serialized tf.train.Example with the shared feature spec (nothing decoded)."""
    return tf.io.parse_single_example(serialized, features.FEATURE_SPEC)


def decode_parsed(parsed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Decode image and mask of a parsed example.

    Returns:
        dict with image uint8 (H, W, 3), mask float32 (H, W, 1) in {0, 1}, label int64,
        blur_kind, region_shape, source_id, source_group, split, degradations (tf.string),
        strength, area_fraction (float32), height, width, variant (int64).
    """
    out = {
        name: parsed[name]
        for name in features.ALL_FEATURES
        if name not in (features.IMAGE, features.MASK)
    }
    image = tf.io.decode_image(parsed[features.IMAGE], channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    mask = tf.io.decode_png(parsed[features.MASK], channels=1)
    out[features.IMAGE] = image
    out[features.MASK] = tf.cast(mask >= 128, tf.float32)
    return out


def _records(files: list[str], *, training: bool, seed: int) -> tf.data.Dataset:
    names = tf.data.Dataset.from_tensor_slices(files)
    if training:
        names = names.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return names.interleave(
        lambda name: tf.data.TFRecordDataset(name, compression_type="GZIP"),
        cycle_length=min(4, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def read_examples(data_dir: str, split: str) -> tf.data.Dataset:
    """Every example of a split, decoded at its stored size (see :func:`decode_parsed`).

    The order is deterministic (shards in name order, interleaved in a fixed pattern).
    """
    files = list_shards(data_dir, split)
    return (
        _records(files, training=False, seed=0)
        .map(parse_serialized, num_parallel_calls=tf.data.AUTOTUNE)
        .map(decode_parsed, num_parallel_calls=tf.data.AUTOTUNE)
    )


# --------------------------------------------------------------------------------------------
# Geometry: crops, resizing, letterbox


def letterbox_pair(image: tf.Tensor, mask: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Fit image (H, W, 3) and mask (H, W, 1) into size x size, centred, zero (black) padding.

    The detect job's letterbox (:func:`sbdn_pipeline.geometry.letterbox_tensor`), image and
    mask resized together as one 4-channel stack, then clipped to their documented ranges.
    """
    stacked = tf.concat([tf.cast(image, tf.float32), mask], axis=-1)
    stacked = geometry.letterbox_tensor(stacked, size)
    # Area resizing can overshoot by a few ulps; keep the documented ranges exact.
    return tf.clip_by_value(stacked[..., :3], 0.0, 255.0), tf.clip_by_value(
        stacked[..., 3:], 0.0, 1.0
    )


def random_crop_pair(
    image: tf.Tensor,
    mask: tf.Tensor,
    size: int,
    seed: tf.Tensor,
    max_crop_scale: float | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Random square crop (side between ``size`` and the short side) resized to size, plus a
    random horizontal flip; identical geometry for image and mask.

    Images whose short side is below ``size`` are first enlarged to it (bilinear).

    Args:
        seed: int64 tensor of shape (2,) for the stateless random ops.
        max_crop_scale: if set, crop sides are at most ``size * max_crop_scale``, so that
            resizing to ``size`` shrinks blur by at most that factor (subtle blur stays
            visible); None allows the full short side.
    """
    stacked = tf.concat([tf.cast(image, tf.float32), mask], axis=-1)
    height, width = tf.shape(stacked)[0], tf.shape(stacked)[1]
    short = tf.minimum(height, width)
    grow = tf.maximum(1.0, size / tf.cast(short, tf.float32))
    stacked = tf.cond(
        grow > 1.0,
        lambda: tf.image.resize(
            stacked,
            tf.cast(tf.math.ceil(tf.cast(tf.stack([height, width]), tf.float32) * grow), tf.int32),
            method="bilinear",
        ),
        lambda: stacked,
    )
    height, width = tf.shape(stacked)[0], tf.shape(stacked)[1]
    short = tf.minimum(height, width)
    largest = short
    if max_crop_scale is not None:
        largest = tf.minimum(short, tf.cast(size * max_crop_scale, tf.int32))
    largest = tf.maximum(largest, size)
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    side = tf.random.stateless_uniform(
        [], seeds[0], minval=size, maxval=largest + 1, dtype=tf.int32
    )
    top = tf.random.stateless_uniform(
        [], seeds[1], minval=0, maxval=height - side + 1, dtype=tf.int32
    )
    left = tf.random.stateless_uniform(
        [], seeds[2], minval=0, maxval=width - side + 1, dtype=tf.int32
    )
    crop = stacked[top : top + side, left : left + side]
    crop = tf.image.resize(crop, [size, size], method="area")
    crop = tf.image.stateless_random_flip_left_right(crop, seeds[3])
    crop = tf.ensure_shape(crop, [size, size, 4])
    return tf.clip_by_value(crop[..., :3], 0.0, 255.0), tf.clip_by_value(crop[..., 3:], 0.0, 1.0)


def jitter_colours(images: tf.Tensor, strength: float, seed: tf.Tensor) -> tf.Tensor:
    """Random photometric changes of a batch of images, one draw per image.

    Blur is a loss of fine detail, whatever the exposure, white balance or saturation, so
    these changes keep every label and mask; they vary what a network trained on a few
    hundred photos would otherwise memorise (each photo's colours). Every change is
    multiplicative or a power law, so black stays black: letterbox padding (exact zeros) is
    still recognised as padding by the models.

    Args:
        images: float32 (B, H, W, 3) in [0, 255].
        strength: 0 returns the images unchanged; 1 draws an overall gain in [0.75, 1.25],
            per-channel gains in [0.9, 1.1], saturation in [0.6, 1.4] and gamma in
            [0.74, 1.35]; ranges scale linearly with ``strength``.
        seed: int shape [2] seed of the stateless draws.

    Returns:
        The changed images, float32 in [0, 255].
    """
    if strength <= 0:
        return images
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=4)

    def draw(index: int, channels: int, half_width: float) -> tf.Tensor:
        return tf.random.stateless_uniform(
            tf.stack([batch, 1, 1, channels]),
            seeds[index],
            minval=-half_width * strength,
            maxval=half_width * strength,
        )

    gain = (1.0 + draw(0, 1, 0.25)) * (1.0 + draw(1, 3, 0.1))
    out = images * gain
    grey = tf.reduce_mean(out, axis=-1, keepdims=True)
    out = grey + (out - grey) * (1.0 + draw(2, 1, 0.4))
    out = tf.clip_by_value(out, 0.0, 255.0)
    gamma = tf.exp(draw(3, 1, 0.3))
    return 255.0 * tf.pow(out / 255.0, gamma)


def _seed_pairs(seed: int) -> tf.data.Dataset:
    """Endless [2]-shaped seeds for stateless ops, new ones every epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def _map_with_seeds(dataset: tf.data.Dataset, function: Callable, seed: int) -> tf.data.Dataset:
    """``function(element, seed_pair)`` over a dataset, one seed pair per element."""
    return tf.data.Dataset.zip((dataset, _seed_pairs(seed))).map(
        function, num_parallel_calls=tf.data.AUTOTUNE
    )


def jitter_colour_batches(dataset: tf.data.Dataset, strength: float, seed: int) -> tf.data.Dataset:
    """Apply :func:`jitter_colours` to the images of (images, targets) batches; targets as-is."""
    if strength <= 0:
        return dataset
    return _map_with_seeds(
        dataset,
        lambda batch, batch_seed: (jitter_colours(batch[0], strength, batch_seed), batch[1]),
        seed,
    )


def _dihedral(tensor: tf.Tensor, turns: tf.Tensor, flips: tf.Tensor) -> tf.Tensor:
    """Per-example vertical flip, then ``turns`` quarter turns, of a (B, N, N, C) batch."""
    flipped = tf.where(
        flips[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(tensor, [1]), tensor
    )
    transposed = tf.transpose(flipped, [0, 2, 1, 3])
    rotations = tf.stack(
        [
            flipped,
            tf.reverse(transposed, [1]),
            tf.reverse(flipped, [1, 2]),
            tf.reverse(transposed, [2]),
        ]
    )
    batch = tf.shape(tensor)[0]
    return tf.gather_nd(rotations, tf.stack([turns, tf.range(batch)], axis=1))


def turn_and_flip_batches(dataset: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """Random quarter turns and vertical flips of square (images, targets) batches.

    Training views are already flipped left-right at random; this adds the rest of the
    square's symmetries (8 in all). Blur and its mask do not depend on orientation, and a
    network that sees a few hundred photos benefits from every new view of them. Targets that
    are maps (B, n, n, C) turn with their images; per-image labels stay as they are.
    """

    def turn(batch: tuple, batch_seed: tf.Tensor) -> tuple:
        images, targets = batch
        size = tf.shape(images)[0]
        draws = tf.random.experimental.stateless_split(batch_seed, num=2)
        turns = tf.random.stateless_uniform([size], draws[0], minval=0, maxval=4, dtype=tf.int32)
        flips = tf.random.stateless_uniform([size], draws[1]) < 0.5

        def apply(tensor: tf.Tensor) -> tf.Tensor:
            return _dihedral(tensor, turns, flips) if tensor.shape.rank == 4 else tensor

        return apply(images), tf.nest.map_structure(apply, targets)

    return _map_with_seeds(dataset, turn, seed)


# --------------------------------------------------------------------------------------------
# Training / evaluation datasets

# (view image, view mask) -> (image, target); see _target_maker.
TargetMaker = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
# (parsed example, seed pair) -> (image, target), and parsed example -> (image, target).
RandomView = Callable[[dict, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
FixedView = Callable[[dict], tuple[tf.Tensor, tf.Tensor]]


def _keep_example(
    parsed: dict[str, tf.Tensor], source_groups: list[str] | None, positives_only: bool
) -> tf.Tensor:
    keep = tf.constant(True)
    if source_groups is not None:
        groups = tf.constant(list(source_groups), dtype=tf.string)
        keep = tf.logical_and(keep, tf.reduce_any(tf.equal(parsed[features.SOURCE_GROUP], groups)))
    if positives_only:
        keep = tf.logical_and(keep, tf.equal(parsed[features.LABEL], 1))
    return keep


def make_training_dataset(
    data_dir: str,
    split: str,
    *,
    task: str,
    image_size: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
    source_groups: list[str] | None = None,
    positives_only: bool = False,
    mask_downsample: int = 1,
    cache: bool = False,
    shuffle_buffer: int = 256,
    repeat: bool = False,
    min_blurred_fraction: float = DEFAULT_MIN_BLURRED_FRACTION,
    max_crop_scale: float | None = None,
) -> tf.data.Dataset:
    """Batches of (images, targets) for one task.

    Images are float32 (B, S, S, 3) in [0, 255] (no normalisation: that is a layer inside the
    models); the targets of each task are described in :func:`_target_maker`. Views are
    random crops when ``training`` (:func:`_random_crop_view`; files and examples shuffled),
    else the detect job's letterbox, in file order (:func:`_letterbox_view`).

    Args:
        data_dir: data set folder (``OUT`` of ``sbdn make-dataset``).
        split: "train", "val" or "test".
        task: "classifier" or "identifier".
        image_size: S, the model input side.
        batch_size: examples per batch (training drops the last partial batch).
        training: augment and shuffle (True) or letterbox deterministically (False).
        seed: seed of shuffling and augmentation.
        source_groups: keep only examples whose source_group is in this list (e.g. leave BSDS
            out for the identifier: its photos have natural depth of field).
        positives_only: keep only blurred examples.
        mask_downsample: k, the identifier's output stride; must divide S.
        cache: cache in memory: the encoded records when training (augmentation stays random),
            the preprocessed S x S views when not.
        shuffle_buffer: examples in the shuffle buffer (training).
        repeat: repeat forever (then pass ``steps_per_epoch`` to Keras).
        min_blurred_fraction: the classifier's blurry threshold, see :func:`_target_maker`.
        max_crop_scale: the largest training crop, see :func:`_random_crop_view`.

    Raises:
        ValueError: for an unknown task, or a mask_downsample that does not divide S.
        FileNotFoundError: if the split has no shards.
    """
    _check_task(task, image_size, mask_downsample)
    files = list_shards(data_dir, split)
    dataset = _parsed_examples(files, training, seed, source_groups, positives_only)
    to_targets = _target_maker(task, image_size, mask_downsample, min_blurred_fraction)
    if training:
        view = _random_crop_view(to_targets, image_size, max_crop_scale)
        dataset = _augmented_batches(dataset, view, batch_size, seed, cache, shuffle_buffer, repeat)
    else:
        view = _letterbox_view(to_targets, image_size)
        dataset = _letterboxed_batches(dataset, view, batch_size, cache, repeat)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _check_task(task: str, image_size: int, mask_downsample: int) -> None:
    """Raise ValueError for an unknown task or a mask stride that does not divide S."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if mask_downsample < 1 or image_size % mask_downsample:
        raise ValueError(
            f"mask_downsample must be a positive divisor of image_size ({image_size}), "
            f"got {mask_downsample}"
        )


def _parsed_examples(
    files: list[str],
    training: bool,
    seed: int,
    source_groups: list[str] | None,
    positives_only: bool,
) -> tf.data.Dataset:
    """The parsed (still encoded) examples of the shards, filtered by group and label."""
    dataset = _records(files, training=training, seed=seed).map(
        parse_serialized, num_parallel_calls=tf.data.AUTOTUNE
    )
    if source_groups is not None or positives_only:
        dataset = dataset.filter(
            lambda parsed: _keep_example(parsed, source_groups, positives_only)
        )
    return dataset


def _target_maker(
    task: str, image_size: int, mask_downsample: int, min_blurred_fraction: float
) -> TargetMaker:
    """``(view image, view mask) -> (image, target)`` for a task.

    * ``task="classifier"``: labels float32 (1,), 1 = blurry. The label is derived from the
      mask of the view the model sees: blurry when at least ``min_blurred_fraction`` (2 %) of
      the view's pixels are blurred. So a training crop of a partially blurred photo that misses
      the blurred region is labelled sharp, and one that barely touches it is not called blurry.
    * ``task="identifier"``: masks float32 (S/k, S/k, 1) with k = ``mask_downsample``, the
      blurred fraction of each k x k block (area-resized, so values at region borders are
      fractional, in [0, 1]).
    """
    mask_size = image_size // mask_downsample

    def to_targets(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if task == "classifier":
            blurred = tf.reduce_mean(mask)
            label = tf.cast(blurred >= min_blurred_fraction, tf.float32)
            return image, tf.reshape(label, [1])
        if mask_downsample > 1:
            mask = tf.image.resize(mask, [mask_size, mask_size], method="area")
        return image, tf.clip_by_value(mask, 0.0, 1.0)

    return to_targets


def _random_crop_view(
    to_targets: TargetMaker, image_size: int, max_crop_scale: float | None
) -> RandomView:
    """The random training view of a parsed example, from a [2]-shaped seed.

    A view is a random square crop whose side is uniform between S and the image's short side
    (or ``S * max_crop_scale``), resized to S by area averaging, randomly flipped left-right;
    the same geometry for image and mask (:func:`random_crop_pair`).
    """

    def augment(parsed: dict, example_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        decoded = decode_parsed(parsed)
        image, mask = random_crop_pair(
            decoded[features.IMAGE],
            decoded[features.MASK],
            image_size,
            example_seed,
            max_crop_scale,
        )
        return to_targets(image, mask)

    return augment


def _letterbox_view(to_targets: TargetMaker, image_size: int) -> FixedView:
    """The deterministic evaluation view of a parsed example.

    A view is the whole image scaled to fit S x S (aspect ratio kept), centred, padded with
    black, mask padded with 0 - exactly what the detect job feeds the models
    (:func:`sbdn_pipeline.geometry.letterbox`, via :func:`letterbox_pair`).
    """

    def view(parsed: dict) -> tuple[tf.Tensor, tf.Tensor]:
        decoded = decode_parsed(parsed)
        image, mask = letterbox_pair(decoded[features.IMAGE], decoded[features.MASK], image_size)
        return to_targets(image, mask)

    return view


def _augmented_batches(
    dataset: tf.data.Dataset,
    augment: RandomView,
    batch_size: int,
    seed: int,
    cache: bool,
    shuffle_buffer: int,
    repeat: bool,
) -> tf.data.Dataset:
    """Training batches, the last partial batch dropped.

    Examples are shuffled (seeded, a new order every epoch) and ``augment`` gets stateless
    seeds that also change every epoch. The cache comes before both, so it holds only the
    encoded records and every epoch still sees new views.
    """
    if cache:
        dataset = dataset.cache()
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = _map_with_seeds(dataset, augment, seed)
    return dataset.batch(batch_size, drop_remainder=True)


def _letterboxed_batches(
    dataset: tf.data.Dataset,
    view: FixedView,
    batch_size: int,
    cache: bool,
    repeat: bool,
) -> tf.data.Dataset:
    """Evaluation batches in file order, the last partial batch kept.

    The cache comes after ``view``: it holds the finished S x S views, the same every epoch.
    """
    dataset = dataset.map(view, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=False)
