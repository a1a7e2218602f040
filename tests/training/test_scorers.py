"""The evaluation scorers on tiny hand-computed cases (plain numpy, no models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sbdn_pipeline.training import baselines, scorers

# Five images: verdicts at 0.5 are sharp, blurry | blurry, sharp, blurry.
LABELS = [0, 0, 1, 1, 1]
SCORES = [0.2, 0.7, 0.9, 0.4, 0.6]
KINDS = ["none", "none", "gaussian", "motion", "gaussian"]


def _groups(kinds: list[str]) -> list[dict[str, str]]:
    return [{"blur_kind": kind} for kind in kinds]


def test_perfect_separation_gives_auc_one_and_no_errors():
    scorer = scorers.ClassifierScorer(0.5)
    scorer.add([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8])
    report = scorer.report()
    assert report["roc_auc"] == 1.0 and report["accuracy"] == 1.0
    assert report["confusion_matrix"]["fp"] == report["confusion_matrix"]["fn"] == 0


def test_classifier_report_matches_a_confusion_matrix_worked_by_hand():
    scorer = scorers.ClassifierScorer(0.5, group_names=("blur_kind",))
    # Two batches: the scorer only appends, so batch borders do not matter.
    scorer.add(LABELS[:2], SCORES[:2], _groups(KINDS[:2]))
    scorer.add(LABELS[2:], SCORES[2:], _groups(KINDS[2:]))

    report = scorer.report()
    matrix = report["confusion_matrix"]
    assert (matrix["tn"], matrix["fp"], matrix["fn"], matrix["tp"]) == (1, 1, 1, 2)
    assert report["n"] == scorer.count == 5
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["precision"] == pytest.approx(2 / 3) and report["recall"] == pytest.approx(2 / 3)
    # Blurry-over-sharp pairs: 0.9 beats both, 0.6 and 0.4 beat only 0.2 -> 4 of 6.
    assert report["roc_auc"] == pytest.approx(4 / 6)
    assert report["accuracy_per_blur_kind"] == {
        "gaussian": {"n": 2, "accuracy": 1.0},
        "motion": {"n": 1, "accuracy": 0.0},
        "none": {"n": 2, "accuracy": 0.5},
    }
    # gaussian {0.9, 0.6} vs sharp {0.2, 0.7}: 3 of 4 pairs; motion {0.4}: 1 of 2.
    assert report["auc_per_blur_kind_vs_sharp"] == pytest.approx({"gaussian": 0.75, "motion": 0.5})
    assert "threshold_calibration" not in report


def test_a_calibrated_scorer_uses_and_reports_the_fitted_threshold():
    fitted = {"data": "d", "split": "val", "n": 5, "threshold": 0.65, "accuracy_on_split": 0.8}
    scorer = scorers.ClassifierScorer.calibrated(fitted)
    scorer.add(LABELS, SCORES)
    report = scorer.report()
    assert report["threshold"] == 0.65
    assert report["accuracy"] == pytest.approx(2 / 5)  # 0.7 and 0.9 called blurry
    assert list(report)[-1] == "threshold_calibration" and report["threshold_calibration"] == fitted


def test_in_sample_scorer_skips_unlabelled_images_and_reports_the_best_threshold():
    scorer = scorers.InSampleClassifierScorer(None)
    scorer.add([0, None, 1, 0, 1], [0.1, 0.99, 0.2, 0.3, 0.4])
    assert scorer.count == 4 and scorer.has_both_classes

    report = scorer.report()
    assert report["note"] == scorers.NO_THRESHOLD_NOTE and "accuracy" not in report
    assert report["roc_auc"] == pytest.approx(0.75)  # 0.2 < 0.3 is the one lost pair
    # Midpoint 0.15 calls 0.2, 0.3, 0.4 blurry: 3 of 4 right (the lowest of the best).
    assert report["best_threshold_in_sample"] == pytest.approx(0.15)
    assert report["best_accuracy_in_sample"] == pytest.approx(0.75)


def test_in_sample_scorer_with_a_threshold_keeps_n_and_auc_first():
    scorer = scorers.InSampleClassifierScorer(0.5)
    scorer.add([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])
    report = scorer.report()
    assert list(report)[:3] == ["n", "roc_auc", "threshold"]
    assert report["accuracy"] == 0.5  # everything called sharp


def test_one_class_only_is_flagged():
    scorer = scorers.InSampleClassifierScorer(0.5)
    scorer.add([1, 1], [0.2, 0.9])
    assert not scorer.has_both_classes


def test_mask_scorer_scores_each_image_and_each_group():
    truth = np.array([[1.0, 1.0], [0.0, 0.0]])
    half = np.array([[1.0, 0.0], [0.0, 0.0]])
    scorer = scorers.MaskScorer(0.5)
    scores = scorer.add(
        [truth, half, half], [truth, truth, None], _groups(["gaussian", "motion", "motion"])
    )

    assert scores[0] == {"precision": 1.0, "recall": 1.0, "iou": 1.0, "mae": 0.0}
    assert scores[1] == {"precision": 1.0, "recall": 0.5, "iou": 0.5, "mae": 0.25}
    assert scores[2] is None and scorer.count == 2  # no truth: left out
    report = scorer.report()
    assert report["n"] == 2 and report["iou"] == pytest.approx(0.75)
    assert report["mae"] == pytest.approx(0.125)
    assert report["per_blur_kind"]["gaussian"]["iou"] == 1.0
    assert report["per_blur_kind"]["motion"]["n"] == 1


def test_end_to_end_gates_masks_by_the_verdict_and_counts_flagged_sharp_images():
    truth = np.array([[1.0, 0.0], [0.0, 0.0]])
    empty, full = np.zeros((2, 2)), np.ones((2, 2))
    scorer = scorers.EndToEndScorer(0.5)
    scorer.add(
        labels=[1, 0, 0],
        verdicts=[True, True, False],
        masks=[truth, full, full],
        truths=[truth, empty, empty],
    )

    report = scorer.report()
    # Blurry image found exactly (IoU 1); the sharp one called blurry gets its full mask
    # (IoU 0); the one called sharp gets an empty mask, which matches (IoU 1).
    assert report["n"] == 3 and report["iou"] == pytest.approx(2 / 3)
    assert report["sharp_images_with_nonempty_mask"] == 1
    assert report["sharp_images_with_nonempty_mask_fraction"] == 0.5


def test_end_to_end_without_sharp_images_has_no_fraction():
    scorer = scorers.EndToEndScorer(0.5)
    scorer.add([1], [False], [np.ones((2, 2))], [np.ones((2, 2))])
    report = scorer.report()
    assert report["recall"] == 0.0  # called sharp: the blur is missed
    assert report["sharp_images_with_nonempty_mask_fraction"] is None


def _images() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    sharp = rng.uniform(0, 255, size=(32, 32, 3)).astype("uint8")
    flat = np.full((32, 32, 3), 128, dtype="uint8")
    return [sharp, flat], [np.zeros((32, 32), "float32"), np.ones((32, 32), "float32")]


def _calibration(threshold: float) -> dict[str, dict[str, float]]:
    return {b.name: {"threshold": threshold} for b in baselines.image_level_baselines()}


def test_baseline_scorer_fills_columns_and_scores_maps_only_against_a_truth():
    natives, truths = _images()
    scorer = scorers.BaselineScorer(_calibration(0.0), 0.5, scorers.ClassifierScorer.calibrated)
    columns = scorer.add(natives, [0, 1], [None, truths[1]], _groups(["none", "gaussian"]))

    image_level = [scorers.baseline_key(b.name) for b in baselines.image_level_baselines()]
    assert all(f"{key}_score" in columns[0] for key in image_level)
    assert not any(key.endswith("_iou") for key in columns[0])  # no truth: maps not computed
    assert "all_blurred_iou" in columns[1] and columns[1]["all_blurred_iou"] == 1.0
    assert set(scorer.map_reports()) == {b.name for b in baselines.map_baselines()}
    assert all(part["n"] == 1 for part in scorer.map_reports().values())
    report = scorer.report()
    assert list(report)[0] == "baselines" and set(report["baselines"]) == set(baselines.BASELINES)
    for baseline in baselines.image_level_baselines():
        assert report[baseline.name]["n"] == 2 and report[baseline.name]["threshold"] == 0.0
    assert scorer.end_to_end.masks.count == 0  # no gate truths: nothing gated


@pytest.mark.parametrize("threshold, flagged", [(-math.inf, 1), (math.inf, 0)])
def test_baseline_pair_is_gated_by_the_image_level_threshold(threshold, flagged):
    natives, truths = _images()
    scorer = scorers.BaselineScorer(
        _calibration(threshold), 0.5, scorers.ClassifierScorer.calibrated
    )
    scorer.add(natives, [0, 1], [None, truths[1]], _groups(["none", "gaussian"]), truths)

    report = scorer.end_to_end_report()
    assert report["pair"] == list(scorers.END_TO_END_BASELINES) and report["n"] == 2
    # Everything called blurry: the sharp texture keeps the map's blurred pixels; nothing
    # called blurry: every mask empty, so no sharp image is flagged and the blur is missed
    # (recall 0 there; 1 on the sharp image, which has nothing to find).
    assert report["sharp_images_with_nonempty_mask"] == flagged
    assert report["sharp_images_with_nonempty_mask_fraction"] == flagged
    if not flagged:
        assert report["recall"] == pytest.approx(0.5)


def test_column_names():
    assert scorers.baseline_key("lbp-map") == "lbp_map"
    assert scorers.prefixed("identifier", {"iou": 0.5}) == {"identifier_iou": 0.5}
