"""benchmarks.blur_visibility: how much of the labelled blur changed any pixel at all."""

from __future__ import annotations

import csv
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from beam_jobs import make_dataset
from benchmarks import blur_visibility
from tests.synth import tinyset


def test_visibility_counts_changed_mask_pixels_and_scores_the_changed_map_by_iou() -> None:
    mask = np.zeros((4, 6), np.uint8)
    mask[:, :3] = 1  # 12 labelled pixels
    change = np.zeros((4, 6), np.float32)
    change[:2, :3] = 5.0  # 6 of them changed
    change[:, 5] = 5.0  # 4 changed pixels outside the label (a feathered edge)
    visible, oracle_iou = blur_visibility.visibility(change, mask, threshold=1.0, window=1)
    assert visible == pytest.approx(6 / 12)
    assert oracle_iou == pytest.approx(6 / (12 + 4))
    # Averaging over a window spreads and dilutes the change: a 3 x 3 box around a single
    # changed pixel of 9 grey levels gives 1 level in each of its 9 neighbourhoods.
    single = np.zeros((5, 5), np.float32)
    single[2, 2] = 9.0
    full = np.ones((5, 5), np.uint8)
    visible, _ = blur_visibility.visibility(single, full, threshold=1.0, window=3)
    assert visible == pytest.approx(9 / 25)


def test_visibility_of_an_empty_mask_is_an_error() -> None:
    with pytest.raises(ValueError, match="blurred examples only"):
        blur_visibility.visibility(np.ones((3, 3)), np.zeros((3, 3)), 1.0, 1)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    source = str(tmp_path_factory.mktemp("sharp"))
    tinyset.write_photo_folder(source, {"street": 4}, size=(96, 128), corrupt=False)
    output = str(tmp_path_factory.mktemp("data"))
    make_dataset.run(
        make_dataset.MakeDatasetOptions(
            sharp_images=source,
            output=output,
            variants_per_image=4,
            seed=0,
            val_fraction=0.0,
            test_fraction=0.0,
            max_long_side=112,
            examples_per_shard=8,
            preset="realistic",  # blur_visibility regenerates realistic-preset examples
        )
    )
    return {"source": source, "data": output}


def test_measure_regenerates_every_blurred_example_and_joins_the_model_iou(
    tiny_dataset: dict[str, str], tmp_path
) -> None:
    rows = pq.read_table(os.path.join(tiny_dataset["data"], "manifest.parquet")).to_pylist()
    blurred = [row for row in rows if row["label"] == 1]
    assert len(blurred) == 8  # 4 photos x 2 odd variants, all in train
    # A stand-in `sbdn evaluate` folder: the model's IoU for two of the blurred examples.
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    with open(eval_dir / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["source_id", "variant", "label", "identifier_iou"])
        writer.writeheader()
        for row, iou in zip(blurred[:2], (0.25, 0.75)):
            writer.writerow({"source_id": row["source_id"], "variant": row["variant"],
                             "label": 1, "identifier_iou": iou})
    report = blur_visibility.measure(
        tiny_dataset["data"], tiny_dataset["source"], "train",
        thresholds=(1.0, 4.0), window=3, eval_dir=str(eval_dir),
    )
    overall = report["overall"]
    assert report["blurred_examples"] == overall["n"] == 8
    assert overall["model_iou"] == pytest.approx(0.5)
    # Textured photos: most of each blurred region changed; a higher bar counts fewer pixels.
    assert 0.5 < overall["visible_fraction@1"] <= 1.0
    assert overall["visible_fraction@4"] <= overall["visible_fraction@1"]
    assert sum(group["n"] for group in report["per_blur_kind"].values()) == 8
    buckets = report["model_iou_by_visible_fraction"]["buckets"]
    assert sum(bucket["n"] for bucket in buckets.values()) == 8


def test_measure_refuses_a_source_folder_the_data_set_was_not_made_from(
    tiny_dataset: dict[str, str], tmp_path
) -> None:
    other = str(tmp_path / "other")
    tinyset.write_photo_folder(other, {"street": 4}, size=(80, 100), corrupt=False)
    with pytest.raises(SystemExit, match="does not regenerate as stored"):
        blur_visibility.measure(tiny_dataset["data"], other, "train", limit=1)
