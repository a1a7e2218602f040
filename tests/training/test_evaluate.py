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
    return [features.decode_example_mask(record[features.MASK]) for record in records]


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


def test_baseline_thresholds_are_the_best_on_the_calibration_split(tiny_data):
    calibration = evaluate.calibrate_baselines(tiny_data["dir"], "val")
    records = tiny_data["records"]["val"]
    labels = [record[features.LABEL] for record in records]
    natives = [features.decode_example_image(record[features.IMAGE]) for record in records]
    assert set(calibration) == {b.name for b in baselines.image_level_baselines()}
    for baseline in baselines.image_level_baselines():
        scores = [baseline.compute(native) for native in natives]
        best = max(metrics.accuracy(labels, scores, t) for t in sorted(scores) + [max(scores) + 1])
        fitted = calibration[baseline.name]
        assert fitted["accuracy_on_split"] == pytest.approx(best)
        assert metrics.accuracy(labels, scores, fitted["threshold"]) == pytest.approx(best)
        assert fitted["n"] == 8 and fitted["split"] == "val"


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


# --- every baseline, cross-recipe split, folder masks ----------------------------------------


def _quiet(line: str) -> None:
    pass


def test_every_registered_baseline_gets_rows_overall_and_per_kind(tiny_data, tmp_path):
    report = evaluate.evaluate(tiny_data["dir"], str(tmp_path), log=_quiet)

    positives = report["data"]["positives"]
    assert set(report["baselines"]) == set(baselines.BASELINES)
    for baseline in baselines.image_level_baselines():
        part = report[baseline.name]
        assert part["threshold"] == part["threshold_calibration"]["threshold"]
        assert set(part["accuracy_per_blur_kind"]) == {"gaussian", "motion", "none"}
        assert set(part["auc_per_blur_kind_vs_sharp"]) == {"gaussian", "motion"}
    for baseline in baselines.map_baselines():
        part = report[baseline.name]
        assert part["n"] == positives
        assert sum(kind["n"] for kind in part["per_blur_kind"].values()) == positives
    # Sharp texture vs blur of sigma >= 1.5: the classic detectors separate them well.
    assert report["blur-effect"]["roc_auc"] > 0.9 and report["lbp-mean"]["roc_auc"] > 0.9
    assert report["lbp-map"]["iou"] > 0.6
    # The constant map's IoU is the mean blurred fraction, by definition.
    records = tiny_data["records"]["test"]
    fractions = [
        mask.mean()
        for mask, record in zip(_truth_masks(records), records)
        if record[features.LABEL]
    ]
    assert report["all-blurred"]["iou"] == pytest.approx(np.mean(fractions), abs=1e-6)
    with open(tmp_path / "predictions.csv", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    assert {"blur_effect_score", "lbp_mean_score", "laplacian_variance_score"} <= set(row)
    assert os.path.getsize(tmp_path / "confusion_matrix_blur-effect.png") > 0


@pytest.fixture(scope="module")
def cross_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = str(tmp_path_factory.mktemp("cross_data"))
    written = blur_samples.write_dataset(
        folder, {"val": 4, "test": 10}, sizes=((64, 40), (40, 64)), seed=11
    )
    return {"dir": folder, "records": written}


def test_cross_recipe_split_is_evaluated_beside_our_own_with_the_same_thresholds(
    tiny_data, cross_data, energy_models, tmp_path
):
    lines: list[str] = []
    combined = evaluate.evaluate(
        tiny_data["dir"],
        str(tmp_path),
        classifier=energy_models["classifier"],
        identifier=energy_models["identifier"],
        cross_recipe=cross_data["dir"],
        make_plots=False,
        log=lines.append,
    )

    own, cross = combined["datasets"]["own"], combined["datasets"]["cross-recipe"]
    assert (own["data"]["n"], cross["data"]["n"]) == (12, 10)
    assert own["data"]["path"] == tiny_data["dir"] and cross["data"]["path"] == cross_data["dir"]
    assert own["data"]["name"] == "own" and cross["data"]["name"] == "cross-recipe"
    for name in ("classifier", "identifier", "blur-effect", "lbp-map", "laplacian-energy"):
        assert name in own and name in cross
    # Thresholds come from our own val split only, for both data sets.
    for baseline in baselines.image_level_baselines():
        for report in (own, cross):
            fitted = report[baseline.name]["threshold_calibration"]
            assert fitted["data"] == tiny_data["dir"] and fitted["split"] == "val"
        assert own[baseline.name]["threshold"] == cross[baseline.name]["threshold"]
    assert cross["classifier"]["roc_auc"] > 0.9 and cross["identifier"]["iou"] > 0.6
    # One metrics.json with both, and each data set's own full evaluation folder.
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert set(on_disk["datasets"]) == {"own", "cross-recipe"}
    assert on_disk["datasets"]["cross-recipe"]["data"]["n"] == 10
    for name in ("own", "cross-recipe"):
        assert (tmp_path / name / "metrics.json").exists()
        assert (tmp_path / name / "predictions.csv").exists()
    # Both headlines, at the end.
    tail = "\n".join(lines[-2:])
    assert "own: test split" in tail and "cross-recipe: test split" in tail


def test_cross_recipe_needs_two_data_sets_with_the_split(tiny_data, cross_data, tmp_path):
    with pytest.raises(ValueError, match="no train split"):
        evaluate.evaluate(
            tiny_data["dir"], str(tmp_path), cross_recipe=cross_data["dir"], split="train",
            log=_quiet,
        )
    with pytest.raises(ValueError, match="same data set"):
        evaluate.evaluate(tiny_data["dir"], str(tmp_path), cross_recipe=tiny_data["dir"])
    with pytest.raises(ValueError, match="not a data set"):
        evaluate.evaluate(tiny_data["dir"], str(tmp_path), cross_recipe=str(tmp_path))


def _photo_folder(root, rng: np.random.Generator, count: int = 3) -> dict[str, np.ndarray]:
    """sharp/ and blurry/ PNGs (blurry ones blurred on a right part); {stem: truth mask}."""
    truths = {}
    for label_folder, blurred in (("sharp", False), ("blurry", True)):
        os.makedirs(root / label_folder)
        for index in range(count):
            image, mask = blur_samples.example(rng, 48, 64, blurred, sigma=2.5)
            stem = f"{label_folder}{index}"
            Image.fromarray(image).save(root / label_folder / f"{stem}.png")
            truths[stem] = mask[..., 0]
    return truths


def test_folder_masks_add_mask_metrics_for_the_images_that_have_them(
    tiny_data, energy_models, tmp_path
):
    truths = _photo_folder(tmp_path / "photos", np.random.default_rng(8))
    masks = tmp_path / "masks"
    os.makedirs(masks)
    with_masks = ["blurry0", "blurry1", "blurry2", "sharp0"]
    for stem in with_masks:
        white = (truths[stem] * 255).astype("uint8")
        if stem == "blurry1":  # half size: resized to the image
            Image.fromarray(white).resize((32, 24), Image.NEAREST).save(masks / f"{stem}.png")
        elif stem == "blurry2":  # binary PNG
            Image.fromarray(white > 127).save(masks / f"{stem}.png")
        else:
            Image.fromarray(white).save(masks / f"{stem}.png")

    report = evaluate.evaluate(
        str(tmp_path / "photos"),
        str(tmp_path / "out"),
        classifier=energy_models["classifier"],
        identifier=energy_models["identifier"],
        masks=str(masks),
        calibration_data=tiny_data["dir"],
        log=_quiet,
    )

    assert report["masks"]["images_with_masks"] == 4
    assert report["identifier"]["n"] == 4 and report["identifier"]["iou"] > 0.6
    assert report["identifier"]["per_label"]["blurry"]["n"] == 3
    for baseline in baselines.map_baselines():
        assert report[baseline.name]["n"] == 4
    assert report["laplacian-energy"]["iou"] > 0.6
    # Image-level: all 6 labelled images, every baseline, thresholds from the data set's val.
    for name in ("classifier", *(b.name for b in baselines.image_level_baselines())):
        assert report[name]["n"] == 6 and "best_accuracy_in_sample" in report[name]
    assert report["blur-effect"]["roc_auc"] == 1.0
    assert report["blur-effect"]["threshold_calibration"]["data"] == tiny_data["dir"]
    assert "accuracy" in report["lbp-mean"]
    with open(tmp_path / "out" / "scores.csv", encoding="utf-8") as handle:
        rows = {os.path.basename(row["uri"]): row for row in csv.DictReader(handle)}
    assert rows["blurry1.png"]["mask"].endswith("blurry1.png") and not rows["sharp1.png"]["mask"]
    assert float(rows["blurry0.png"]["lbp_map_iou"]) > 0.5


def test_folder_without_calibration_gives_baselines_auc_only(energy_models, tmp_path):
    _photo_folder(tmp_path / "photos", np.random.default_rng(9), count=2)
    report = evaluate.evaluate(str(tmp_path / "photos"), str(tmp_path / "out"), log=_quiet)
    assert "accuracy" not in report["blur-effect"] and "note" in report["blur-effect"]
    assert report["blur-effect"]["roc_auc"] == 1.0
    assert "lbp-map" not in report  # no masks: maps are not computed


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("nobody.png", None, "matches no image"),
        ("sharp0.png", b"\x89PNG\r\n\x1a\n broken", "not a readable PNG"),
        ("sharp0.jpg", None, "must be PNG files"),
    ],
)
def test_bad_masks_fail_before_any_work_in_one_line(tmp_path, name, content, message):
    _photo_folder(tmp_path / "photos", np.random.default_rng(10), count=1)
    masks = tmp_path / "masks"
    os.makedirs(masks)
    if content is None:
        Image.fromarray(np.zeros((4, 4), "uint8")).save(masks / name, format="PNG")
    else:
        (masks / name).write_bytes(content)
    with pytest.raises(ValueError, match=message) as raised:
        evaluate.evaluate(
            str(tmp_path / "photos"), str(tmp_path / "out"), masks=str(masks), log=_quiet
        )
    assert "\n" not in str(raised.value)


def test_a_mask_matching_two_images_is_refused(tiny_data, tmp_path):
    _photo_folder(tmp_path / "photos", np.random.default_rng(12), count=1)
    twin = tmp_path / "photos" / "blurry" / "sharp0.png"  # the same name in another folder
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(twin)
    masks = tmp_path / "masks"
    os.makedirs(masks)
    Image.fromarray(np.zeros((4, 4), "uint8")).save(masks / "sharp0.png")
    with pytest.raises(ValueError, match="matches 2 images"):
        evaluate.match_masks(
            str(masks), [str(p) for p in (tmp_path / "photos").rglob("*.png")]
        )
    with pytest.raises(ValueError, match="--masks is for a folder"):
        evaluate.evaluate(tiny_data["dir"], str(tmp_path / "o"), masks=str(masks))


def test_tile_settings_reach_the_models_and_are_recorded(tiny_data, energy_models, tmp_path):
    # Letterbox only (budgets 0) with the global view as P: what `sbdn detect
    # --classifier-tiles 0 --identifier-tiles 0 --tile-pooling global` does.
    settings = evaluate.TileSettings(classifier_tiles=0, identifier_tiles=0, tile_pooling="global")
    report = evaluate.evaluate(
        tiny_data["dir"], str(tmp_path), classifier=energy_models["classifier"],
        identifier=energy_models["identifier"], baselines=False, tiles=settings,
        log=lambda line: None,
    )
    assert report["protocol"]["tiles"] == {
        "classifier_tiles": 0, "identifier_tiles": 0, "tile_pooling": "global"}
    assert report["classifier"]["roc_auc"] > 0.95 and report["identifier"]["iou"] > 0.75
    with open(tmp_path / "predictions.csv", encoding="utf-8") as handle:
        header, first = handle.readline(), handle.readline()
    columns = dict(zip(header.strip().split(","), first.strip().split(",")))
    # Letterbox only: every pooling is the global view.
    assert columns["p_mean"] == columns["p_global"] == columns["p_max_global"]
