"""The tf.data reader: round trip of the shared feature spec, views, labels and targets."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sbdn_pipeline import features, geometry
from sbdn_pipeline.training import reader
from tests.synth import tinyset

S = 64


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """train: 3 half-blurred positives (left half blurred), 3 sharp negatives, 1 positive whose
    blur covers only the left 10 % columns; groups a/b. val: 2 examples."""
    folder = str(tmp_path_factory.mktemp("tinyset"))
    records = []
    for index in range(3):
        image, mask = tinyset.half_blurred(96, 128, seed=index)
        records.append(
            tinyset.record(image, mask, source_id=f"{index:016x}", source_group="group_a")
        )
        sharp = tinyset.textured_photo(96, 128, seed=10 + index)
        records.append(
            tinyset.record(
                sharp,
                np.zeros((96, 128), np.uint8),
                source_id=f"{index:016x}",
                source_group="group_b",
                variant=0,
            )
        )
    image, _ = tinyset.half_blurred(80, 400, seed=7)
    narrow_mask = np.zeros((80, 400), np.uint8)
    narrow_mask[:, :40] = 1
    records.append(
        tinyset.record(image, narrow_mask, source_id="00000000000000ff", source_group="group_a")
    )
    tinyset.write_records(folder, "train", records, shards=3)
    val_records = [
        tinyset.record(*tinyset.half_blurred(70, 90, seed=20), split="val"),
        tinyset.record(
            tinyset.textured_photo(70, 90, 21), np.zeros((70, 90), np.uint8), split="val"
        ),
    ]
    tinyset.write_records(folder, "val", val_records, shards=1)
    return {"dir": folder, "train": records, "val": val_records}


def test_list_shards_finds_every_shard_in_name_order(tiny_set: dict) -> None:
    shards = reader.list_shards(tiny_set["dir"], "train")
    assert len(shards) == 3 and shards == sorted(shards)
    assert all(s.endswith(features.SHARD_SUFFIX) for s in shards)


def test_missing_split_is_a_clear_error(tiny_set: dict) -> None:
    with pytest.raises(FileNotFoundError, match="no TFRecord shards match"):
        reader.list_shards(tiny_set["dir"], "test")
    with pytest.raises(ValueError, match="unknown split"):
        reader.list_shards(tiny_set["dir"], "holdout")


def test_read_examples_round_trips_every_feature(tiny_set: dict) -> None:
    examples = list(reader.read_examples(tiny_set["dir"], "val").as_numpy_iterator())
    assert len(examples) == 2
    for got, want in zip(examples, tiny_set["val"]):
        assert got["image"].dtype == np.uint8 and got["image"].shape == (70, 90, 3)
        assert got["mask"].dtype == np.float32 and got["mask"].shape == (70, 90, 1)
        assert set(np.unique(got["mask"])) <= {0.0, 1.0}
        np.testing.assert_array_equal(got["mask"][..., 0],
                                      features.decode_example_mask(want["mask"]))
        # Same JPEG bytes; TF's default fast integer IDCT (also used by the detect job) and
        # Pillow's accurate one differ by a few grey levels on noisy texture.
        difference = np.abs(got["image"].astype(int) - features.decode_example_image(want["image"]))
        assert difference.mean() < 2.5
        for name in (features.LABEL, features.HEIGHT, features.WIDTH, features.VARIANT):
            assert got[name] == want[name]
        for name in (
            features.BLUR_KIND,
            features.REGION_SHAPE,
            features.SOURCE_ID,
            features.SOURCE_GROUP,
            features.SPLIT,
            features.DEGRADATIONS,
        ):
            assert got[name].decode() == want[name]
        assert got["strength"] == pytest.approx(want["strength"])
        assert got["area_fraction"] == pytest.approx(want["area_fraction"])


def test_mask_stays_aligned_with_the_blur_after_the_round_trip(tiny_set: dict) -> None:
    for example in reader.read_examples(tiny_set["dir"], "train").as_numpy_iterator():
        if example["label"] == 0 or example["width"] == 400:
            continue
        energy = tinyset.laplacian_energy(example["image"])
        mask = example["mask"][..., 0].astype(bool)
        assert energy[mask].mean() < 0.5 * energy[~mask].mean()


@pytest.mark.parametrize("training", [True, False])
def test_classifier_batches_follow_the_model_contract(tiny_set: dict, training: bool) -> None:
    dataset = reader.make_training_dataset(
        tiny_set["dir"], "train", task="classifier", image_size=S, batch_size=3, training=training
    )
    images, labels = next(iter(dataset))
    assert images.shape == (3, S, S, 3) and images.dtype == tf.float32
    assert labels.shape == (3, 1) and labels.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0
    assert set(np.unique(labels.numpy())) <= {0.0, 1.0}


@pytest.mark.parametrize("training", [True, False])
def test_identifier_masks_are_downsampled_and_within_unit_range(
    tiny_set: dict, training: bool
) -> None:
    dataset = reader.make_training_dataset(
        tiny_set["dir"],
        "train",
        task="identifier",
        image_size=S,
        batch_size=2,
        training=training,
        mask_downsample=4,
    )
    images, masks = next(iter(dataset))
    assert images.shape == (2, S, S, 3)
    assert masks.shape == (2, S // 4, S // 4, 1) and masks.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(masks)) and float(tf.reduce_max(masks)) <= 1.0


def test_bad_mask_downsample_or_task_is_rejected(tiny_set: dict) -> None:
    with pytest.raises(ValueError, match="mask_downsample"):
        reader.make_training_dataset(
            tiny_set["dir"],
            "train",
            task="identifier",
            image_size=S,
            batch_size=2,
            training=False,
            mask_downsample=5,
        )
    with pytest.raises(ValueError, match="unknown task"):
        reader.make_training_dataset(
            tiny_set["dir"], "train", task="detector", image_size=S, batch_size=2, training=False
        )


def test_training_crop_that_misses_the_blur_is_labelled_sharp(tiny_set: dict) -> None:
    # Only the 400-px-wide example (blur in its left 40 columns) is kept. Its crops are
    # 80 px squares at random x: those left of x~38 see >= 2 % blur, the others none.
    dataset = reader.make_training_dataset(
        tiny_set["dir"],
        "train",
        task="classifier",
        image_size=S,
        batch_size=1,
        training=True,
        positives_only=True,
        source_groups=["group_a"],
        repeat=True,
        shuffle_buffer=1,
    )
    dataset = dataset.take(200)
    labels = np.concatenate([y.numpy().ravel() for _, y in dataset])
    # Mixed with the half-blurred positives (always blurry): both verdicts appear.
    assert 0 < labels.mean() < 1
    assert (labels == 0).sum() >= 20


def test_letterbox_view_keeps_the_whole_blur_and_its_label(tiny_set: dict) -> None:
    dataset = reader.make_training_dataset(
        tiny_set["dir"], "train", task="classifier", image_size=S, batch_size=16, training=False
    )
    _, labels = next(iter(dataset))
    expected = [float(r[features.LABEL]) for r in _file_order(tiny_set)]
    assert labels.numpy().ravel().tolist() == expected


def _file_order(tiny_set: dict) -> list[dict]:
    """The records in the order read_examples yields them (by source id and variant)."""
    order = [
        (e["source_id"].decode(), int(e["variant"]), int(e["width"]))
        for e in reader.read_examples(tiny_set["dir"], "train").as_numpy_iterator()
    ]
    by_key = {
        (r[features.SOURCE_ID], r[features.VARIANT], r[features.WIDTH]): r
        for r in tiny_set["train"]
    }
    return [by_key[key] for key in order]


def test_letterbox_view_matches_the_detect_jobs_letterbox(tiny_set: dict) -> None:
    dataset = reader.make_training_dataset(
        tiny_set["dir"], "val", task="identifier", image_size=S, batch_size=1, training=False
    )
    images, masks = next(iter(dataset))
    decoded = next(reader.read_examples(tiny_set["dir"], "val").as_numpy_iterator())
    expected, info = geometry.letterbox(decoded["image"], S)
    np.testing.assert_allclose(images.numpy()[0], expected, atol=0.51)
    # Padding rows carry no blur; content rows keep the left-half mask.
    content = masks.numpy()[0, info.top : info.top + info.content_height, :, 0]
    assert content[:, : S // 2 - 2].min() > 0.9 and content[:, S // 2 + 2 :].max() < 0.1


def test_filters_keep_only_requested_groups_and_positives(tiny_set: dict) -> None:
    def count(**kwargs) -> tuple[int, float]:
        dataset = reader.make_training_dataset(
            tiny_set["dir"],
            "train",
            task="classifier",
            image_size=S,
            batch_size=1,
            training=False,
            **kwargs,
        )
        labels = [float(y.numpy()[0, 0]) for _, y in dataset]
        return len(labels), float(np.mean(labels))

    assert count() == (7, pytest.approx(4 / 7))
    assert count(source_groups=["group_b"]) == (3, 0.0)
    assert count(positives_only=True) == (4, 1.0)


def test_same_seed_gives_the_same_training_batches(tiny_set: dict) -> None:
    def first_batches(seed: int) -> np.ndarray:
        dataset = reader.make_training_dataset(
            tiny_set["dir"],
            "train",
            task="identifier",
            image_size=S,
            batch_size=2,
            training=True,
            seed=seed,
        )
        return np.concatenate([x.numpy() for x, _ in dataset.take(3)])

    np.testing.assert_array_equal(first_batches(3), first_batches(3))
    assert not np.array_equal(first_batches(3), first_batches(4))


def test_feature_spec_covers_every_feature_and_records_must_be_complete() -> None:
    assert set(features.FEATURE_SPEC) == set(features.ALL_FEATURES)
    incomplete = tinyset.record(tinyset.textured_photo(8, 8, 0), np.zeros((8, 8), np.uint8))
    del incomplete[features.SOURCE_GROUP]
    with pytest.raises(KeyError, match="source_group"):
        features.make_example(incomplete)


def test_colour_jitter_keeps_black_padding_range_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, 16, 20, 3)).astype("float32")
    images[:, :4] = 0.0  # letterbox padding rows
    seed = tf.constant([3, 4], tf.int64)

    jittered = reader.jitter_colours(tf.constant(images), 1.0, seed).numpy()

    assert jittered.shape == images.shape
    assert np.all(jittered[:, :4] == 0.0)  # padding is still exactly black
    assert jittered.min() >= 0.0 and jittered.max() <= 255.0
    assert not np.allclose(jittered[:, 4:], images[:, 4:], atol=1.0)
    # One draw per image: images of the same batch change differently.
    ratios = jittered[:, 4:].mean(axis=(1, 2, 3)) / images[:, 4:].mean(axis=(1, 2, 3))
    assert np.ptp(ratios) > 0.02
    np.testing.assert_array_equal(
        reader.jitter_colours(tf.constant(images), 1.0, seed).numpy(), jittered
    )
    np.testing.assert_array_equal(
        reader.jitter_colours(tf.constant(images), 0.0, seed).numpy(), images
    )


def test_colour_jitter_changes_overall_levels_but_not_where_detail_is() -> None:
    """A blurred half stays the half with less fine detail: labels and masks stay valid."""
    image, mask = tinyset.half_blurred(64, 64, seed=0)
    batch = tf.constant(np.repeat(image[np.newaxis].astype("float32"), 8, axis=0))

    jittered = reader.jitter_colours(batch, 1.0, tf.constant([1, 2], tf.int64)).numpy()

    def detail(pixels: np.ndarray) -> float:
        grey = pixels.mean(axis=-1)
        return float(np.abs(np.diff(grey, axis=1)).mean())

    blurred = mask.astype(bool)
    for view in jittered:
        assert detail(view[:, ~blurred.any(axis=0)]) > 2 * detail(view[:, blurred.all(axis=0)])


def test_colour_jitter_batches_touch_images_only() -> None:
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (4, S, S, 3)).astype("float32")
    masks = (rng.uniform(size=(4, S, S, 1)) > 0.5).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2)

    jittered = list(reader.jitter_colour_batches(batches, 0.5, seed=0))

    assert len(jittered) == 2
    for index, (new_images, new_masks) in enumerate(jittered):
        np.testing.assert_array_equal(new_masks.numpy(), masks[2 * index : 2 * index + 2])
        assert not np.allclose(new_images.numpy(), images[2 * index : 2 * index + 2])
    assert reader.jitter_colour_batches(batches, 0.0, seed=0) is batches


def test_turn_and_flip_moves_images_and_maps_together_and_keeps_labels() -> None:
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    maps = images[..., :1] / 255.0  # a map that is the image's first channel: easy to follow
    labels = np.arange(16, dtype="float32")[:, np.newaxis]
    batches = tf.data.Dataset.from_tensor_slices(
        (images, {"p_blurry": labels, "blur_map": maps})
    ).batch(16)

    (new_images, targets), = list(reader.turn_and_flip_batches(batches, seed=0))
    new_images = new_images.numpy()

    symmetries = {}
    for index in range(16):
        matches = [
            (turns, flip)
            for turns in range(4)
            for flip in (False, True)
            if np.array_equal(
                np.rot90(images[index][::-1] if flip else images[index], turns), new_images[index]
            )
        ]
        assert len(matches) == 1, index  # each view is exactly one symmetry of its image
        symmetries[index] = matches[0]
    assert len(set(symmetries.values())) >= 4  # drawn per example, not per batch
    np.testing.assert_array_equal(targets["blur_map"].numpy(), new_images[..., :1] / 255.0)
    np.testing.assert_array_equal(targets["p_blurry"].numpy(), labels)
