"""The make-dataset Beam job and CLI on a handful of generated photos (in-process runner)."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from beam_jobs import make_dataset
from sbdn_pipeline import features
from sbdn_pipeline.cli.dataset import make_dataset_command, show_dataset_command
from tests.synth import tinyset

GROUPS = {"street": 5, "nature": 4}


def _options(source: str, output: str, **overrides) -> make_dataset.MakeDatasetOptions:
    settings = dict(
        sharp_images=source,
        output=output,
        variants_per_image=2,
        seed=0,
        val_fraction=0.25,
        test_fraction=0.25,
        max_long_side=112,
        examples_per_shard=4,
    )
    settings.update(overrides)
    return make_dataset.MakeDatasetOptions(**settings)


def _examples(output: str) -> dict[str, list[dict]]:
    """Every example of every split, parsed to plain dicts."""
    by_split = {}
    for split in features.SPLITS:
        files = sorted(glob.glob(features.shard_pattern(output, split)))
        by_split[split] = [
            features.parse_example_bytes(raw)
            for raw in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()
        ]
    return by_split


@pytest.fixture(scope="module")
def source_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = str(tmp_path_factory.mktemp("sharp"))
    tinyset.write_photo_folder(folder, GROUPS, size=(96, 128), corrupt=True)
    return folder


@pytest.fixture(scope="module")
def dataset(source_folder: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    output = str(tmp_path_factory.mktemp("dataset"))
    manifest = make_dataset.run(_options(source_folder, output))
    return {"output": output, "manifest": manifest, "examples": _examples(output)}


def test_every_source_photo_gets_all_its_variants_in_exactly_one_split(dataset: dict) -> None:
    splits_of_source: dict[str, set] = {}
    variants_of_source: dict[str, list] = {}
    for split, examples in dataset["examples"].items():
        for example in examples:
            source = example[features.SOURCE_ID].decode()
            assert example[features.SPLIT].decode() == split
            splits_of_source.setdefault(source, set()).add(split)
            variants_of_source.setdefault(source, []).append(example[features.VARIANT])
    assert len(splits_of_source) == sum(GROUPS.values())
    assert all(len(splits) == 1 for splits in splits_of_source.values())
    assert all(sorted(v) == [0, 1] for v in variants_of_source.values())
    assert {s for splits in splits_of_source.values() for s in splits} >= {"train"}


def test_half_of_the_examples_are_blurred_with_masks_that_match_their_labels(dataset: dict) -> None:
    examples = [e for split in dataset["examples"].values() for e in split]
    assert sum(e[features.LABEL] for e in examples) == len(examples) // 2
    for example in examples:
        mask = features.decode_example_mask(example[features.MASK])
        image = features.decode_example_image(example[features.IMAGE])
        assert mask.shape == image.shape[:2] == (example[features.HEIGHT], example[features.WIDTH])
        assert max(mask.shape) <= 112
        assert example[features.LABEL] == int(mask.any())
        assert example[features.AREA_FRACTION] == pytest.approx(mask.mean(), abs=1e-6)
        assert (example[features.BLUR_KIND] == b"none") == (example[features.LABEL] == 0)
        assert example[features.SOURCE_GROUP].decode() in GROUPS


def test_corrupt_source_photo_is_listed_as_rejected_and_the_job_finishes(dataset: dict) -> None:
    rejected = dataset["manifest"]["rejected"]
    assert [os.path.basename(r["path"]) for r in rejected] == ["broken.jpg"]
    assert rejected[0]["error"]


def test_manifest_counts_match_the_shards(dataset: dict) -> None:
    manifest = dataset["manifest"]
    with open(os.path.join(dataset["output"], features.MANIFEST_JSON)) as handle:
        assert json.load(handle)["totals"] == manifest["totals"]
    for split, examples in dataset["examples"].items():
        counts = manifest["splits"].get(split, {"examples": 0, "blur_kind": {}})
        assert counts["examples"] == len(examples)
        kinds: dict[str, int] = {}
        for example in examples:
            kind = example[features.BLUR_KIND].decode()
            kinds[kind] = kinds.get(kind, 0) + 1
        assert counts["blur_kind"] == dict(sorted(kinds.items()))
    assert manifest["parameters"]["seed"] == 0
    assert manifest["parameters"]["recipe"]["preset"] == "photographic"
    table = __import__("pyarrow.parquet", fromlist=["read_table"]).read_table(
        os.path.join(dataset["output"], features.MANIFEST_PARQUET)
    )
    assert table.num_rows == manifest["totals"]["examples"]
    assert table.schema.equals(features.MANIFEST_SCHEMA)


def test_same_seed_writes_the_same_examples(dataset: dict, source_folder: str, tmp_path) -> None:
    make_dataset.run(_options(source_folder, str(tmp_path)))
    again = _examples(str(tmp_path))
    for split in features.SPLITS:

        def key(e):
            return (e[features.SOURCE_ID], e[features.VARIANT])

        first = sorted(dataset["examples"][split], key=key)
        second = sorted(again[split], key=key)
        assert first == second


def test_split_assignment_depends_only_on_source_and_seed() -> None:
    ids = [make_dataset.make_source_id(f"group/photo_{i}.jpg") for i in range(2000)]
    splits = [make_dataset.assign_split(i, 0, 0.1, 0.2) for i in ids]
    assert splits == [make_dataset.assign_split(i, 0, 0.1, 0.2) for i in ids]
    fractions = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert fractions["val"] == pytest.approx(0.1, abs=0.03)
    assert fractions["test"] == pytest.approx(0.2, abs=0.03)
    assert splits != [make_dataset.assign_split(i, 1, 0.1, 0.2) for i in ids]


def test_source_ids_and_groups_come_from_paths_below_the_source_folder(source_folder: str) -> None:
    photos = make_dataset.list_source_photos(_options(source_folder, "/unused"))
    assert {p.source_group for p in photos} == set(GROUPS)
    assert all(p.relative_path.startswith(p.source_group + "/") for p in photos)
    assert all(p.source_id == make_dataset.make_source_id(p.relative_path) for p in photos)


def test_source_root_is_the_folder_before_any_wildcard(source_folder: str) -> None:
    assert make_dataset.source_root(source_folder) == source_folder
    assert make_dataset.source_root(source_folder + "/*/*.jpg") == source_folder
    assert make_dataset.source_root(source_folder + "/street/photo_00.jpg") == os.path.join(
        source_folder, "street"
    )
    assert make_dataset.source_root("gs://bucket/sharp/") == "gs://bucket/sharp"
    assert make_dataset.source_root("gs://bucket/sharp/2026-*/*.jpg") == "gs://bucket/sharp"


def test_glob_source_gives_the_same_ids_and_groups_as_its_folder(source_folder: str) -> None:
    by_folder = make_dataset.list_source_photos(_options(source_folder, "/unused"))
    by_glob = make_dataset.list_source_photos(_options(source_folder + "/*/*.jpg", "/unused"))
    assert sorted((p.source_id, p.source_group, p.split) for p in by_folder) == sorted(
        (p.source_id, p.source_group, p.split) for p in by_glob
    )


def test_exclude_list_reads_paths_and_skips_comments_and_blank_lines(tmp_path) -> None:
    listing = tmp_path / "exclude.txt"
    listing.write_text(
        "# photos with natural depth of field\n\nnature/photo_01.jpg  # soft background\n"
        "street\\photo_02.jpg\n",
        encoding="utf-8-sig",  # with a byte-order mark, as some Windows editors write
    )
    assert make_dataset.read_exclude_list(str(listing)) == (
        "nature/photo_01.jpg",
        "street/photo_02.jpg",
    )
    listing.write_text("nature/photo_01.jpg\nnature/photo_01.jpg # again\n", encoding="utf-8")
    with pytest.raises(ValueError, match="listed twice"):
        make_dataset.read_exclude_list(str(listing))


def test_shipped_depth_of_field_list_is_a_valid_exclude_list_with_a_reason_per_photo() -> None:
    path = os.path.join(
        os.path.dirname(__file__), "..", "..", "models", "training-data",
        "natural-depth-of-field.txt",
    )  # fmt: skip
    listed = make_dataset.read_exclude_list(path)
    assert len(listed) == 61
    groups = {entry.split("/")[0] for entry in listed}
    assert groups <= {"bsds500_train", "bsds500_val", "urban100", "sunhays80"}
    with open(path, encoding="utf-8") as handle:
        entries = [line for line in handle if line.strip() and not line.startswith("#")]
    assert all("#" in line and line.split("#", 1)[1].strip() for line in entries)


def test_excluded_photos_are_left_out_without_moving_the_others_between_splits(
    source_folder: str,
) -> None:
    every = make_dataset.list_source_photos(_options(source_folder, "/unused"))
    left_out = tuple(p.relative_path for p in every[:3])
    kept = make_dataset.list_source_photos(
        _options(source_folder, "/unused", exclude_sources=left_out)
    )
    assert sorted((p.source_id, p.split) for p in kept) == sorted(
        (p.source_id, p.split) for p in every if p.relative_path not in left_out
    )


def test_excluding_a_path_that_matches_no_photo_fails_before_the_pipeline(
    source_folder: str,
) -> None:
    with pytest.raises(ValueError, match="match no photo.*nature/typo.jpg"):
        make_dataset.list_source_photos(
            _options(source_folder, "/unused", exclude_sources=("nature/typo.jpg",))
        )


def test_source_that_matches_nothing_fails_before_the_pipeline(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_dataset.list_source_photos(_options(str(tmp_path / "missing"), str(tmp_path / "out")))


def test_existing_dataset_is_not_overwritten_without_the_flag(
    dataset: dict, source_folder: str
) -> None:
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_dataset.prepare_output(dataset["output"], overwrite=False)


def test_cli_original_preset_makes_224_px_examples_with_a_rectangle(
    source_folder: str, tmp_path
) -> None:
    output = str(tmp_path / "original")
    result = CliRunner().invoke(
        make_dataset_command,
        ["--sharp-images", source_folder, "--output", output, "--preset", "original"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 18 examples (9 blurred, 9 sharp) from 9 photos" in result.output
    examples = [e for split in _examples(output).values() for e in split]
    assert len(examples) == 18
    for example in examples:
        assert (example[features.HEIGHT], example[features.WIDTH]) == (224, 224)
        mask = features.decode_example_mask(example[features.MASK]).astype(bool)
        if example[features.LABEL]:
            assert example[features.REGION_SHAPE] == b"rectangle"
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            # Bicubic upscaling of the label (128 -> 224 px) may round off the very corners.
            assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].mean() > 0.97
        else:
            assert not mask.any()


def test_cli_exclude_sources_leaves_photos_out_and_records_them_in_the_manifest(
    source_folder: str, tmp_path
) -> None:
    listing = tmp_path / "exclude.txt"
    listing.write_text("nature/photo_00.jpg  # soft background\n", encoding="utf-8")
    output = str(tmp_path / "curated")
    result = CliRunner().invoke(
        make_dataset_command,
        [
            "--sharp-images", source_folder, "--output", output, "--preset", "original",
            "--exclude-sources", str(listing),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 excluded" in result.output
    assert "wrote 16 examples (8 blurred, 8 sharp) from 8 photos" in result.output
    with open(os.path.join(output, features.MANIFEST_JSON), encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert manifest["parameters"]["excluded_sources"] == ["nature/photo_00.jpg"]


def test_cli_reports_a_missing_source_folder_clearly(tmp_path) -> None:
    result = CliRunner().invoke(
        make_dataset_command,
        ["--sharp-images", str(tmp_path / "nope"), "--output", str(tmp_path / "o")],
    )
    assert result.exit_code != 0
    assert "does not exist" in result.output


def test_show_dataset_writes_a_non_blank_png(dataset: dict, tmp_path) -> None:
    png = str(tmp_path / "grid.png")
    result = CliRunner().invoke(
        show_dataset_command, [dataset["output"], "--n", "4", "--png", png, "--tile-size", "96"]
    )
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(png).convert("RGB"))
    assert grid.shape[0] > 96 and grid.shape[1] > 96
    assert grid.std() > 20  # photos and captions, not an empty canvas
    red = (grid[..., 0] > 200) & (grid[..., 1] < 80) & (grid[..., 2] < 80)
    assert red.sum() > 20  # mask outlines are drawn


def test_consecutive_shots_form_one_capture_group_and_share_a_split() -> None:
    paths = [f"street/walk_p{n}.jpg" for n in (10, 11, 13, 40, 42)] + [
        "street/other_p12.jpg", "nature/img_1.jpg", "nature/img_2.jpg",
    ]
    keys = make_dataset.capture_keys(paths, ("street",))
    assert keys["street/walk_p10.jpg"] == keys["street/walk_p11.jpg"] == keys["street/walk_p13.jpg"]
    assert keys["street/walk_p40.jpg"] == keys["street/walk_p42.jpg"] != keys["street/walk_p10.jpg"]
    assert keys["street/other_p12.jpg"] != keys["street/walk_p13.jpg"]  # another prefix
    # Outside the sequence groups every photo is its own group (older data sets keep splits).
    assert keys["nature/img_1.jpg"] == "nature/img_1.jpg"


def test_test_only_groups_and_split_selection(source_folder: str) -> None:
    every = make_dataset.list_source_photos(_options(source_folder, "/unused"))
    held_out = make_dataset.list_source_photos(
        _options(source_folder, "/unused", test_only_groups=("nature",))
    )
    assert {p.split for p in held_out if p.source_group == "nature"} == {"test"}
    assert [(p.source_id, p.split) for p in held_out if p.source_group == "street"] == [
        (p.source_id, p.split) for p in every if p.source_group == "street"
    ]
    only = make_dataset.list_source_photos(
        _options(source_folder, "/unused", splits=("val", "test"))
    )
    assert sorted(p.source_id for p in only) == sorted(
        p.source_id for p in every if p.split in ("val", "test")
    )
    with pytest.raises(ValueError, match="splits"):
        _options(source_folder, "/unused", splits=("holdout",))


def test_photographic_examples_follow_human_segmentations(tmp_path) -> None:
    # One photo with a segmentation file laid out as make-dataset expects (<group>/<stem>_<k>.png).
    source = tmp_path / "sharp" / "group"
    source.mkdir(parents=True)
    Image.fromarray(tinyset.textured_photo(120, 160, 0)).save(source / "p1.jpg", quality=95)
    seg_dir = tmp_path / "segments" / "group"
    seg_dir.mkdir(parents=True)
    labels = np.zeros((120, 160), np.uint16)
    labels[:, 80:] = 1
    labels[40:80, 20:60] = 2
    Image.fromarray(labels).save(seg_dir / "p1_1.png")
    options = _options(
        str(tmp_path / "sharp"), str(tmp_path / "out"), preset="photographic",
        variants_per_image=8, max_long_side=0, segments_dir=str(tmp_path / "segments"),
    )
    (photo,) = make_dataset.list_source_photos(options)
    maps = make_dataset.read_segmentations(photo, options.segments_dir)
    assert len(maps) == 1 and maps[0].shape == (120, 160)
    rows = [row for _, row in make_dataset.synthesize_photo_examples(photo, np.asarray(
        Image.open(source / "p1.jpg").convert("RGB")), options, maps)]
    assert sum(row[features.LABEL] for row in rows) == 4
    assert {row[features.REGION_SHAPE] for row in rows} - {"none"}
