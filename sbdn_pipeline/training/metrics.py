"""Evaluation metrics in plain numpy, small enough to check by hand.

Classifier metrics take 1-D arrays of true labels (0 = sharp, 1 = blurry) and scores
(P(blurry)); a score >= threshold is a "blurry" verdict.

Identifier metrics follow the defocus-blur / salient-object literature: each image gets a
precision and recall at every threshold of a fixed sweep; these are averaged over images, and
F-beta (beta^2 = 0.3, which weighs precision more than recall) is computed from the averaged
curves; the maximum over the sweep is max-F-beta. IoU and MAE are per-image means. A truth mask
pixel counts as blurred when its value is >= 0.5.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

BETA_SQUARED = 0.3
DEFAULT_SWEEP_STEPS = 256
# Blur strength buckets, in effective Gaussian sigma (pixels) the blur would have on the same
# photo stored at 1024 px on its long side: subtle, mild, moderate, strong.
STRENGTH_BUCKET_EDGES_AT_1024 = (2.0, 4.0, 8.0)
SHARP_GROUP = "sharp"


# --- classifier -------------------------------------------------------------------------------


def _as_labels(labels: Any) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1)
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (sharp) or 1 (blurry)")
    return labels.astype(bool)


def _as_scores(scores: Any, size: int) -> np.ndarray:
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    if scores.size != size:
        raise ValueError(f"got {scores.size} scores for {size} labels")
    return scores


def confusion_matrix(labels: Any, scores: Any, threshold: float = 0.5) -> np.ndarray:
    """Return [[TN, FP], [FN, TP]]: rows are the truth (sharp, blurry), columns the verdict."""
    truth = _as_labels(labels)
    verdict = _as_scores(scores, truth.size) >= threshold
    return np.array(
        [
            [np.sum(~truth & ~verdict), np.sum(~truth & verdict)],
            [np.sum(truth & ~verdict), np.sum(truth & verdict)],
        ],
        dtype="int64",
    )


def accuracy(labels: Any, scores: Any, threshold: float = 0.5) -> float:
    """Fraction of verdicts (score >= threshold means blurry) that match the labels."""
    matrix = confusion_matrix(labels, scores, threshold)
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")


def precision_recall(labels: Any, scores: Any, threshold: float = 0.5) -> tuple[float, float]:
    """(precision, recall) of the "blurry" verdict; NaN where the denominator is zero."""
    (_, fp), (fn, tp) = confusion_matrix(labels, scores, threshold)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return float(precision), float(recall)


def average_ranks(values: Any) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of the ranks they span."""
    values = np.asarray(values, dtype="float64").reshape(-1)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start index of each run of equal values, and the run each sorted element belongs to.
    run_starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    run_ends = np.r_[run_starts[1:], values.size]
    mean_rank_of_run = (run_starts + 1 + run_ends) / 2.0  # mean of ranks start+1 .. end
    run_of_sorted = np.repeat(np.arange(run_starts.size), run_ends - run_starts)
    ranks = np.empty(values.size, dtype="float64")
    ranks[order] = mean_rank_of_run[run_of_sorted]
    return ranks


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos * n_neg)); ties count one half.

    Returns NaN when only one class is present.
    """
    truth = _as_labels(labels)
    scores = _as_scores(scores, truth.size)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    rank_sum = average_ranks(scores)[truth].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), thresholds descending from +inf."""
    truth = _as_labels(labels)
    scores = _as_scores(scores, truth.size)
    thresholds = np.r_[np.inf, np.unique(scores)[::-1]]
    positives, negatives = max(int(truth.sum()), 1), max(int((~truth).sum()), 1)
    tpr = np.array([np.sum(truth & (scores >= t)) for t in thresholds]) / positives
    fpr = np.array([np.sum(~truth & (scores >= t)) for t in thresholds]) / negatives
    return fpr, tpr, thresholds


def best_accuracy_threshold(labels: Any, scores: Any) -> float:
    """The threshold (among midpoints between sorted distinct scores) with the best accuracy.

    Used to calibrate baselines on the validation split; ties go to the lowest threshold.
    """
    truth = _as_labels(labels)
    scores = _as_scores(scores, truth.size)
    distinct = np.unique(scores)
    if distinct.size == 0:
        raise ValueError("no scores to choose a threshold from")
    candidates = np.r_[distinct[0] - 1.0, (distinct[1:] + distinct[:-1]) / 2.0, distinct[-1] + 1.0]
    accuracies = [np.mean((scores >= t) == truth) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def classifier_summary(labels: Any, scores: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, ROC AUC, precision, recall and confusion matrix at ``threshold``."""
    precision, recall = precision_recall(labels, scores, threshold)
    matrix = confusion_matrix(labels, scores, threshold)
    return {
        "n": int(matrix.sum()),
        "threshold": float(threshold),
        "accuracy": accuracy(labels, scores, threshold),
        "roc_auc": roc_auc(labels, scores),
        "precision": precision,
        "recall": recall,
        "confusion_matrix": {
            "rows_truth_cols_verdict": ["sharp", "blurry"],
            "tn": int(matrix[0, 0]),
            "fp": int(matrix[0, 1]),
            "fn": int(matrix[1, 0]),
            "tp": int(matrix[1, 1]),
        },
    }


# --- identifier -------------------------------------------------------------------------------


def _mask_pair(predicted: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, dtype="float64")
    truth = np.asarray(truth)
    predicted = predicted.reshape(predicted.shape[:2]) if predicted.ndim == 3 else predicted
    truth = truth.reshape(truth.shape[:2]) if truth.ndim == 3 else truth
    if predicted.shape != truth.shape:
        raise ValueError(
            f"predicted mask {predicted.shape} and truth mask {truth.shape} differ in size; "
            "resize the prediction to the truth's resolution first"
        )
    return np.clip(predicted, 0.0, 1.0), truth >= 0.5


def _safe_precision_recall(
    tp: np.ndarray, fp: np.ndarray, positives: int
) -> tuple[np.ndarray, np.ndarray]:
    # Nothing predicted: precision is 1 when there was nothing to find, else 0.
    predicted = tp + fp
    precision = np.where(
        predicted > 0, tp / np.maximum(predicted, 1), 1.0 if positives == 0 else 0.0
    )
    recall = tp / positives if positives else np.ones_like(tp, dtype="float64")
    return precision.astype("float64"), np.asarray(recall, dtype="float64")


def mask_precision_recall_curve(
    predicted: Any, truth: Any, steps: int = DEFAULT_SWEEP_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of one mask at thresholds k / (steps - 1), k = 0 .. steps - 1.

    A pixel is predicted blurred when its value is >= the threshold. Computed from one
    histogram per class, so it costs O(pixels) whatever the number of thresholds.
    """
    predicted, truth = _mask_pair(predicted, truth)
    bins = np.floor(predicted * (steps - 1) + 1e-9).astype("int64")
    positive_counts = np.bincount(bins[truth], minlength=steps)
    negative_counts = np.bincount(bins[~truth], minlength=steps)
    # Pixels predicted positive at threshold k are those in bins >= k.
    tp = np.cumsum(positive_counts[::-1])[::-1]
    fp = np.cumsum(negative_counts[::-1])[::-1]
    return _safe_precision_recall(tp, fp, int(truth.sum()))


def mask_precision_recall_at(
    predicted: Any, truth: Any, threshold: float = 0.5
) -> tuple[float, float]:
    """Precision and recall of one mask at one threshold."""
    predicted, truth = _mask_pair(predicted, truth)
    verdict = predicted >= threshold
    tp = np.array([np.sum(verdict & truth)])
    fp = np.array([np.sum(verdict & ~truth)])
    precision, recall = _safe_precision_recall(tp, fp, int(truth.sum()))
    return float(precision[0]), float(recall[0])


def iou(predicted: Any, truth: Any, threshold: float = 0.5) -> float:
    """Intersection over union of the blurred pixels; 1.0 when both masks are empty."""
    predicted, truth = _mask_pair(predicted, truth)
    verdict = predicted >= threshold
    union = np.sum(verdict | truth)
    return float(np.sum(verdict & truth) / union) if union else 1.0


def mean_absolute_error(predicted: Any, truth: Any) -> float:
    """Mean |predicted - truth| over pixels, with the truth binarised at 0.5."""
    predicted, truth = _mask_pair(predicted, truth)
    return float(np.mean(np.abs(predicted - truth)))


def f_beta(precision: Any, recall: Any, beta_squared: float = BETA_SQUARED) -> np.ndarray:
    """(1 + b^2) P R / (b^2 P + R), 0 where both are 0."""
    precision = np.asarray(precision, dtype="float64")
    recall = np.asarray(recall, dtype="float64")
    denominator = beta_squared * precision + recall
    return np.where(
        denominator > 0,
        (1 + beta_squared) * precision * recall / np.maximum(denominator, 1e-12),
        0.0,
    )


class MaskMetrics:
    """Accumulates per-image mask scores and reports the data-set identifier metrics.

    Args:
        steps: thresholds in the max-F-beta sweep (k / (steps - 1)).
        threshold: the fixed threshold for F-beta and IoU (the shipped mask threshold).
        beta_squared: beta^2 of F-beta.
    """

    def __init__(
        self,
        steps: int = DEFAULT_SWEEP_STEPS,
        threshold: float = 0.5,
        beta_squared: float = BETA_SQUARED,
    ) -> None:
        self.steps = steps
        self.threshold = threshold
        self.beta_squared = beta_squared
        self._precision_sum = np.zeros(steps)
        self._recall_sum = np.zeros(steps)
        self._precision_at: list[float] = []
        self._recall_at: list[float] = []
        self._iou: list[float] = []
        self._mae: list[float] = []

    def add(self, predicted: Any, truth: Any) -> dict[str, float]:
        """Score one image (masks of equal size, values in [0, 1]); returns its own scores."""
        precision_curve, recall_curve = mask_precision_recall_curve(predicted, truth, self.steps)
        self._precision_sum += precision_curve
        self._recall_sum += recall_curve
        precision, recall = mask_precision_recall_at(predicted, truth, self.threshold)
        scores = {
            "precision": precision,
            "recall": recall,
            "iou": iou(predicted, truth, self.threshold),
            "mae": mean_absolute_error(predicted, truth),
        }
        self._precision_at.append(precision)
        self._recall_at.append(recall)
        self._iou.append(scores["iou"])
        self._mae.append(scores["mae"])
        return scores

    @property
    def count(self) -> int:
        """Images added so far."""
        return len(self._mae)

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, mean precision, mean recall) of the sweep."""
        count = max(self.count, 1)
        thresholds = np.arange(self.steps) / (self.steps - 1)
        return thresholds, self._precision_sum / count, self._recall_sum / count

    def summary(self) -> dict[str, Any]:
        """max-F-beta and its threshold; F-beta, precision, recall, IoU at the threshold; MAE."""
        if not self.count:
            return {"n": 0}
        thresholds, precision, recall = self.curves()
        sweep = f_beta(precision, recall, self.beta_squared)
        best = int(np.argmax(sweep))
        precision_at = float(np.mean(self._precision_at))
        recall_at = float(np.mean(self._recall_at))
        return {
            "n": self.count,
            "max_f_beta": float(sweep[best]),
            "max_f_beta_threshold": float(thresholds[best]),
            "threshold": self.threshold,
            "f_beta": float(f_beta(precision_at, recall_at, self.beta_squared)),
            "precision": precision_at,
            "recall": recall_at,
            "iou": float(np.mean(self._iou)),
            "mae": float(np.mean(self._mae)),
            "beta_squared": self.beta_squared,
        }


# --- groups -----------------------------------------------------------------------------------


def strength_bucket(strength: float, long_side: int, label: int) -> str:
    """Name the strength bucket of an example ("sharp" for label 0), e.g. "sigma 2-4px".

    ``strength`` is the effective blur sigma in pixels at the stored size; it is rescaled to
    what it would be at 1024 px on the long side, so buckets mean the same on any image size.
    """
    if not label:
        return SHARP_GROUP
    sigma_at_1024 = float(strength) * 1024.0 / max(int(long_side), 1)
    lows = (0.0, *STRENGTH_BUCKET_EDGES_AT_1024)
    highs = (*STRENGTH_BUCKET_EDGES_AT_1024, None)
    for low, high in zip(lows, highs):
        if high is None:
            return f"sigma {low:g}+px"
        if sigma_at_1024 < high:
            # Names sort in strength order: "sigma 0-2px" < "sigma 2-4px" < ... < "sigma 8+px".
            return f"sigma {low:g}-{high:g}px"
    raise AssertionError("unreachable")


def group_indices(groups: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """Indices of each distinct group value, groups in sorted order."""
    groups = list(groups)
    found: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        found.setdefault(group, []).append(index)
    return {group: np.asarray(found[group]) for group in sorted(found, key=str)}


def accuracy_by_group(
    labels: Any, scores: Any, groups: Sequence[Hashable], threshold: float = 0.5
) -> dict[str, dict[str, float]]:
    """Accuracy (and count) of the verdicts within each group."""
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    return {
        str(group): {
            "n": int(index.size),
            "accuracy": accuracy(labels[index], scores[index], threshold),
        }
        for group, index in group_indices(groups).items()
    }


def auc_by_group_against_sharp(
    labels: Any, scores: Any, groups: Sequence[Hashable]
) -> dict[str, float]:
    """ROC AUC of each group of blurry examples against all sharp examples.

    Answers "how well does the score separate *this* kind of blur from sharp photos".
    """
    labels = np.asarray(labels).reshape(-1).astype(int)
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    sharp = np.flatnonzero(labels == 0)
    result = {}
    for group, index in group_indices(groups).items():
        blurry = index[labels[index] == 1]
        if blurry.size == 0:
            continue
        chosen = np.r_[sharp, blurry]
        result[str(group)] = roc_auc(labels[chosen], scores[chosen])
    return result
