"""The evaluation job on a tiny generated data set and a folder of images."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from sbdn_pipeline import features
from sbdn_pipeline.training import baselines, evaluate, metrics
from tests.training import blur_samples

MODEL_SIZE = 64


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = str(tmp_path_factory.mktemp("eval_data"))
    # No image is larger than the models' input, so none is enlarged (which would soften it).
    sizes = ((48, 64), (64, 48), (64, 64))
    written = blur_samples.write_dataset(folder, {"val": 8, "test": 12}, sizes=sizes, seed=3)
    return {"dir": folder, "records": written}


@pytest.fixture(scope="module")
def constant_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return blur_samples.save_constant_models(str(tmp_path_factory.mktemp("constant")), MODEL_SIZE)


@pytest.fixture(scope="module")
def energy_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return blur_samples.save_energy_models(str(tmp_path_factory.mktemp("energy")), MODEL_SIZE)


def _truth_masks(records: list[dict]) -> list[np.ndarray]:
    return [features.decode_mask(record[features.MASK]) for record in records]


def test_models_that_call_everything_blurred_score_exactly_as_computed_by_hand(
    tiny_data, constant_models, tmp_path
):
    report = evaluate.evaluate(
        tiny_data["dir"],
        str(tmp_path),
        classifier=constant_models["classifier"],
        identifier=constant_models["identifier"],
        baselines=False,
        log=lambda line: None,
    )

    records = tiny_data["records"]["test"]
    labels = [record[features.LABEL] for record in records]
    positives, negatives = sum(labels), len(labels) - sum(labels)
    assert report["data"] == {
        "path": tiny_data["dir"],
        "split": "test",
        "n": 12,
        "positives": positives,
        "negatives": negatives,
    }
    # Everything called blurry.
    assert report["classifier"]["accuracy"] == pytest.approx(positives / len(labels))
    assert report["classifier"]["confusion_matrix"]["fp"] == negatives
    assert report["classifier"]["roc_auc"] == pytest.approx(0.5)  # all scores tie
    # Every pixel marked blurred: IoU = precision = blurred fraction, recall 1, MAE = 1 - fraction.
    fractions = [mask.mean() for mask, label in zip(_truth_masks(records), labels) if label]
    identifier = report["identifier"]
    assert identifier["n"] == positives
    assert identifier["iou"] == pytest.approx(np.mean(fractions), abs=1e-6)
    assert identifier["mae"] == pytest.approx(1 - np.mean(fractions), abs=1e-6)
    assert identifier["recall"] == pytest.approx(1.0)
    assert identifier["f_beta"] == pytest.approx(metrics.f_beta(np.mean(fractions), 1.0), abs=1e-6)
    assert (
        identifier["per_blur_kind"]["gaussian"]["n"] + identifier["per_blur_kind"]["motion"]["n"]
        == positives
    )
    # End to end, every sharp image gets a full mask: precision 0 there.
    end_to_end = report["end_to_end"]["models"]
    assert end_to_end["sharp_images_with_nonempty_mask"] == negatives
    assert end_to_end["iou"] == pytest.approx(np.sum(fractions) / len(labels), abs=1e-6)

    with open(tmp_path / "predictions.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and {row["source_id"] for row in rows} == {
        r[features.SOURCE_ID] for r in records
    }
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["classifier"]["accuracy"] == report["classifier"]["accuracy"]
    for name in (
        "roc.png",
        "confusion_matrix_classifier.png",
        "accuracy_per_blur_kind.png",
        "accuracy_per_strength.png",
        "identifier_pr_curve.png",
    ):
        assert os.path.getsize(tmp_path / name) > 0


def test_energy_models_and_baselines_find_the_blur_and_its_place(
    tiny_data, energy_models, tmp_path
):
    report = evaluate.evaluate(
        tiny_data["dir"],
        str(tmp_path),
        classifier=energy_models["classifier"],
        identifier=energy_models["identifier"],
        log=lambda line: None,
    )

    assert report["classifier"]["roc_auc"] > 0.95 and report["classifier"]["accuracy"] > 0.9
    # A mask misplaced by the letterbox mapping (shifted, flipped, transposed) would fail these.
    assert report["identifier"]["iou"] > 0.75
    assert report["identifier"]["max_f_beta"] > 0.85
    # The Laplacian baselines are strong on this easy synthetic blur, and calibrated on val.
    calibration = report["laplacian-variance"]["threshold_calibration"]
    assert calibration["split"] == "val" and calibration["n"] == 8
    assert report["laplacian-variance"]["threshold"] == calibration["threshold"]
    assert report["laplacian-energy"]["n"] == report["identifier"]["n"]
    assert "baselines" in report["end_to_end"]
    assert set(report["classifier"]["accuracy_per_blur_kind"]) == {"gaussian", "motion", "none"}


def test_laplacian_threshold_is_the_best_on_the_calibration_split(tiny_data):
    calibration = evaluate.calibrate_laplacian_threshold(tiny_data["dir"], "val")
    records = tiny_data["records"]["val"]
    labels = [record[features.LABEL] for record in records]
    scores = [
        baselines.laplacian_blur_score(features.decode_image(record[features.IMAGE]))
        for record in records
    ]
    best = max(metrics.accuracy(labels, scores, t) for t in sorted(scores) + [max(scores) + 1])
    assert calibration["accuracy_on_split"] == pytest.approx(best)


def test_folder_of_images_gets_scores_per_file_and_labels_from_folder_names(
    energy_models, tmp_path
):
    rng = np.random.default_rng(5)
    images = tmp_path / "photos"
    for label_folder, blurred in (("sharp", False), ("blurry", True)):
        os.makedirs(images / label_folder)
        for index in range(3):
            image, _ = blur_samples.example(rng, 48, 64, blurred, sigma=2.5)
            if blurred:
                image = blur_samples.blur(image, 2.5)
            Image.fromarray(image).save(images / label_folder / f"{index}.png")
    (images / "sharp" / "broken.jpg").write_bytes(b"not an image at all")

    report = evaluate.evaluate(
        str(images),
        str(tmp_path / "out"),
        classifier=energy_models["classifier"],
        identifier=energy_models["identifier"],
        log=lambda line: None,
    )

    assert report["data"]["files"] == 7 and report["data"]["errors"] == 1
    assert report["classifier"]["n"] == 6 and report["classifier"]["accuracy"] == 1.0
    assert report["laplacian-variance"]["roc_auc"] == 1.0
    with open(tmp_path / "out" / "scores.csv", encoding="utf-8") as handle:
        rows = {os.path.basename(row["uri"]) + row["label"]: row for row in csv.DictReader(handle)}
    assert rows["broken.jpg0"]["error"].startswith("not_an_image")
    assert (
        float(rows["0.png1"]["blur_probability"]) > 0.5 > float(rows["0.png0"]["blur_probability"])
    )
    # Fully blurred; only the blocks on the edge next to the black letterbox band look sharp.
    assert float(rows["0.png1"]["blur_area_fraction"]) > 0.7
    assert float(rows["0.png0"]["blur_area_fraction"]) < 0.05


def test_label_from_path_uses_the_nearest_labelled_folder():
    assert evaluate.label_from_path("/data/sharp/blurry/x.jpg") == 1
    assert evaluate.label_from_path("/data/Blurred/x.jpg") == 1
    assert evaluate.label_from_path("/data/sharp/x.jpg") == 0
    assert evaluate.label_from_path("/data/sharp.jpg") is None
