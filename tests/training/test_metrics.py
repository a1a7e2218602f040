"""Metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sbdn_pipeline.training import metrics

LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.5, 0.5, 0.9]  # one sharp and one blurry example tie at 0.5


def test_average_ranks_share_ranks_between_ties():
    np.testing.assert_allclose(metrics.average_ranks([0.1, 0.5, 0.5, 0.9]), [1, 2.5, 2.5, 4])
    np.testing.assert_allclose(metrics.average_ranks([3, 1, 3, 3]), [3, 1, 3, 3])


def test_roc_auc_counts_ties_as_half():
    # Positive/negative pairs: 0.5>0.1, 0.5=0.5 (half), 0.9>0.1, 0.9>0.5 -> 3.5 of 4.
    assert metrics.roc_auc(LABELS, SCORES) == pytest.approx(0.875)
    assert metrics.roc_auc([0, 1], [0.2, 0.8]) == 1.0
    assert metrics.roc_auc([0, 1], [0.8, 0.2]) == 0.0
    assert metrics.roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5


def test_roc_auc_is_nan_with_a_single_class():
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.4]))


def test_confusion_accuracy_precision_recall_at_threshold():
    # Verdicts at 0.5: [sharp, blurry, blurry, blurry].
    matrix = metrics.confusion_matrix(LABELS, SCORES, 0.5)
    np.testing.assert_array_equal(matrix, [[1, 1], [0, 2]])
    assert metrics.accuracy(LABELS, SCORES, 0.5) == pytest.approx(0.75)
    precision, recall = metrics.precision_recall(LABELS, SCORES, 0.5)
    assert precision == pytest.approx(2 / 3)
    assert recall == 1.0
    summary = metrics.classifier_summary(LABELS, SCORES, 0.6)
    assert summary["confusion_matrix"] == {
        "rows_truth_cols_verdict": ["sharp", "blurry"],
        "tn": 2,
        "fp": 0,
        "fn": 1,
        "tp": 1,
    }
    assert summary["accuracy"] == pytest.approx(0.75)


def test_labels_other_than_zero_and_one_are_rejected():
    with pytest.raises(ValueError, match="0 \\(sharp\\) or 1"):
        metrics.accuracy([0, 2], [0.1, 0.2])


def test_roc_curve_runs_from_origin_to_corner():
    fpr, tpr, thresholds = metrics.roc_curve(LABELS, SCORES)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    assert thresholds[0] == np.inf


def test_best_accuracy_threshold_splits_separable_scores():
    assert metrics.best_accuracy_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(
        0.25
    )


TRUTH = np.array([[1, 1], [0, 0]], dtype="float32")
PREDICTED = np.array([[0.9, 0.4], [0.6, 0.1]], dtype="float32")


def test_mask_iou_mae_precision_recall_by_hand():
    # At 0.5 the prediction marks (0,0) and (1,0): intersection 1, union 3.
    assert metrics.iou(PREDICTED, TRUTH) == pytest.approx(1 / 3)
    assert metrics.mean_absolute_error(PREDICTED, TRUTH) == pytest.approx(
        (0.1 + 0.6 + 0.6 + 0.1) / 4
    )
    assert metrics.mask_precision_recall_at(PREDICTED, TRUTH, 0.5) == (0.5, 0.5)
    assert metrics.iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_mask_curve_uses_thresholds_k_over_steps_minus_one():
    precision, recall = metrics.mask_precision_recall_curve(PREDICTED, TRUTH, steps=3)
    # t=0: all 4 pixels; t=0.5: 0.9 and 0.6; t=1: none (precision 0: there was blur to find).
    np.testing.assert_allclose(precision, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(recall, [1.0, 0.5, 0.0])


def test_f_beta_formula():
    assert metrics.f_beta(0.5, 1.0) == pytest.approx(1.3 * 0.5 / 1.15)
    assert metrics.f_beta(0.0, 0.0) == 0.0
    assert metrics.f_beta(0.6, 0.6, beta_squared=1.0) == pytest.approx(0.6)


def test_max_f_beta_averages_precision_and_recall_over_images_first():
    accumulator = metrics.MaskMetrics(steps=3)
    accumulator.add(PREDICTED, TRUTH)
    accumulator.add(np.array([[0.0, 1.0]]), np.array([[0, 1]]))
    summary = accumulator.summary()
    # Mean curves: t=0 P=.5 R=1; t=.5 P=.75 R=.75; t=1 P=.5 R=.5 -> best F at t=.5 is .75.
    assert summary["n"] == 2
    assert summary["max_f_beta"] == pytest.approx(0.75)
    assert summary["max_f_beta_threshold"] == pytest.approx(0.5)
    assert summary["f_beta"] == pytest.approx(0.75)
    assert summary["iou"] == pytest.approx((1 / 3 + 1) / 2)
    assert summary["mae"] == pytest.approx((0.35 + 0.0) / 2)


def test_masks_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        metrics.iou(np.zeros((4, 4)), np.zeros((2, 2)))


def test_strength_buckets_are_relative_to_a_1024_pixel_long_side():
    assert metrics.strength_bucket(0.0, 800, 0) == "sharp"
    assert metrics.strength_bucket(1.5, 1024, 1) == "sigma 0-2px"
    assert metrics.strength_bucket(1.0, 512, 1) == "sigma 2-4px"
    assert metrics.strength_bucket(3.0, 512, 1) == "sigma 4-8px"
    assert metrics.strength_bucket(20.0, 1024, 1) == "sigma 8+px"


def test_per_group_accuracy_and_auc_against_sharp():
    labels = [0, 0, 1, 1, 1]
    scores = [0.2, 0.6, 0.9, 0.4, 0.7]
    kinds = ["none", "none", "motion", "motion", "defocus"]
    by_kind = metrics.accuracy_by_group(labels, scores, kinds)
    assert by_kind == {
        "defocus": {"n": 1, "accuracy": 1.0},
        "motion": {"n": 2, "accuracy": 0.5},
        "none": {"n": 2, "accuracy": 0.5},
    }
    auc = metrics.auc_by_group_against_sharp(labels, scores, kinds)
    # motion vs sharp: 0.9 beats both, 0.4 beats 0.2 only -> 3 of 4; defocus 0.7 beats both.
    assert auc == {"defocus": 1.0, "motion": 0.75}
