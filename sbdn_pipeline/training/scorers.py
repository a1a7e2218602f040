"""Scorers of the evaluation job: fed batch by batch (``add``), then asked for a ``report()``.

Plain numpy, no models: each scorer takes what a model or baseline said about a batch of
images next to the truth, keeps what its report needs and nothing else, and reports with the
definitions of :mod:`sbdn_pipeline.training.metrics`.

* :class:`ClassifierScorer`: image-level scores (higher = blurrier) against labels, at a
  decision threshold, overall and per group; :class:`InSampleClassifierScorer` for labelled
  folders, which adds the best accuracy the scores could reach on those very images.
* :class:`MaskScorer`: per-pixel mask metrics, overall and per group.
* :class:`EndToEndScorer`: the cascade of the detect job: the mask where the image-level
  verdict is "blurry", an empty mask elsewhere, scored on every image.
* :class:`BaselineScorer`: every classic baseline of
  :mod:`~sbdn_pipeline.training.baselines` over the same images, through the scorers above.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sbdn_pipeline.training import baselines, metrics

# The classic pair gated end to end like the models: (image-level gate, map).
END_TO_END_BASELINES = ("laplacian-variance", "laplacian-energy")
NO_THRESHOLD_NOTE = "no calibration split (--calibration-data): ROC AUC only"

# One image's groups: {group name: value}, e.g. {"blur_kind": "motion"}.
Groups = Mapping[str, str]
# The image-level baselines' fitted thresholds, from ``evaluation_inputs.calibrate_baselines``:
# {baseline name: {"data", "split", "n", "threshold", "accuracy_on_split"}}.
Calibration = dict[str, dict[str, Any]]


def baseline_key(name: str) -> str:
    """Column prefix of a baseline in the per-image CSV files ("lbp-map" -> "lbp_map")."""
    return name.replace("-", "_")


def prefixed(prefix: str, scores: Mapping[str, float]) -> dict[str, float]:
    """Per-image scores as CSV columns: {"iou": x} -> {"<prefix>_iou": x}."""
    return {f"{prefix}_{key}": value for key, value in scores.items()}


def baseline_catalogue() -> dict[str, dict[str, str]]:
    """{name: {"kind", "description"}} of every baseline, for reports and tables."""
    return {
        baseline.name: {"kind": baseline.kind, "description": baseline.description}
        for baseline in baselines.BASELINES.values()
    }


class ClassifierScorer:
    """Image-level scores against labels (0 sharp, 1 blurry), as a data set evaluation reports.

    Args:
        threshold: a score >= this is a "blurry" verdict (None, for an uncalibrated baseline,
            only in :class:`InSampleClassifierScorer`).
        group_names: the groups (keys of each image's ``groups``) that get an accuracy each;
            with ``blur_kind`` among them, each blur kind also gets its ROC AUC against every
            sharp image.
        calibration: where ``threshold`` was fitted (a baseline's), reported beside it.
    """

    def __init__(
        self,
        threshold: float | None,
        group_names: Sequence[str] = (),
        calibration: dict[str, Any] | None = None,
    ) -> None:
        self.threshold = threshold
        self.group_names = tuple(group_names)
        self.calibration = calibration
        self._labels: list[int] = []
        self._scores: list[float] = []
        self._groups: dict[str, list[str]] = {name: [] for name in self.group_names}

    @classmethod
    def calibrated(
        cls, fitted: dict[str, Any] | None, group_names: Sequence[str] = ()
    ) -> ClassifierScorer:
        """A scorer at a baseline's fitted threshold (``calibrate_baselines``), None: none."""
        return cls(fitted["threshold"] if fitted else None, group_names, fitted)

    def add(
        self, labels: Sequence[int], scores: Sequence[float], groups: Sequence[Groups] = ()
    ) -> None:
        """Add a batch: one label, score and (with group names) groups mapping per image."""
        self._labels.extend(int(label) for label in labels)
        self._scores.extend(float(score) for score in scores)
        for name, values in self._groups.items():
            values.extend(image_groups[name] for image_groups in groups)

    @property
    def count(self) -> int:
        """Images added so far."""
        return len(self._labels)

    @property
    def has_both_classes(self) -> bool:
        """True once sharp and blurry images were both added (else ROC AUC is undefined)."""
        return {0, 1} <= set(self._labels)

    @property
    def labels(self) -> np.ndarray:
        """The labels added, in order."""
        return np.array(self._labels)

    @property
    def scores(self) -> np.ndarray:
        """The scores added, in order (float64)."""
        return np.array(self._scores, dtype="float64")

    def report(self) -> dict[str, Any]:
        """Accuracy, ROC AUC, precision, recall and confusion matrix; accuracy per group."""
        labels, scores = self.labels, self.scores
        result = metrics.classifier_summary(labels, scores, self.threshold)
        for name in self.group_names:
            result[f"accuracy_per_{name}"] = metrics.accuracy_by_group(
                labels, scores, self._groups[name], self.threshold
            )
        if "blur_kind" in self._groups:
            result["auc_per_blur_kind_vs_sharp"] = metrics.auc_by_group_against_sharp(
                labels, scores, self._groups["blur_kind"]
            )
        if self.calibration is not None:
            result["threshold_calibration"] = self.calibration
        return result


class InSampleClassifierScorer(ClassifierScorer):
    """Image-level scores on a folder's labelled images (unlabelled ones, None, are skipped).

    Besides the metrics at ``threshold`` (ROC AUC only without one: an uncalibrated
    baseline), reports the best accuracy over all thresholds *on these images*: an upper
    bound, labelled as such.
    """

    def add(
        self, labels: Sequence[int | None], scores: Sequence[float], groups: Sequence[Groups] = ()
    ) -> None:
        """Add a batch; images whose label is None (no sharp/blurry folder) are left out."""
        kept = [(label, score) for label, score in zip(labels, scores) if label is not None]
        super().add([label for label, _ in kept], [score for _, score in kept])

    def report(self) -> dict[str, Any]:
        """n, ROC AUC, the metrics at the threshold (or a note), the in-sample best."""
        labels, scores = self.labels, self.scores
        result: dict[str, Any] = {"n": self.count, "roc_auc": metrics.roc_auc(labels, scores)}
        if self.threshold is not None:
            result.update(metrics.classifier_summary(labels, scores, self.threshold))
        else:
            result["note"] = NO_THRESHOLD_NOTE
        if self.calibration is not None:
            result["threshold_calibration"] = self.calibration
        best = metrics.best_accuracy_threshold(labels, scores)
        result["best_accuracy_in_sample"] = metrics.accuracy(labels, scores, best)
        result["best_threshold_in_sample"] = best
        return result


class MaskScorer:
    """Per-pixel mask metrics (:class:`metrics.MaskMetrics`) overall and per group value.

    Args:
        threshold: a mask pixel is blurred when its value is >= this.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.overall = metrics.MaskMetrics(threshold=threshold)
        self._groups: dict[str, dict[str, metrics.MaskMetrics]] = {}

    def add(
        self,
        predicted: Sequence[np.ndarray],
        truths: Sequence[np.ndarray | None],
        groups: Sequence[Groups],
    ) -> list[dict[str, float] | None]:
        """Add a batch of masks; a None truth leaves that image out (nothing to compare with).

        Returns:
            Each image's own scores (precision, recall, iou, mae), None where left out.
        """
        return [
            None if truth is None else self._add_image(mask, truth, image_groups)
            for mask, truth, image_groups in zip(predicted, truths, groups)
        ]

    def _add_image(self, mask: np.ndarray, truth: np.ndarray, groups: Groups) -> dict[str, float]:
        scores = self.overall.add(mask, truth)
        for name, value in groups.items():
            per_value = self._groups.setdefault(name, {})
            if value not in per_value:
                per_value[value] = metrics.MaskMetrics(threshold=self.threshold)
            per_value[value].add(mask, truth)
        return scores

    @property
    def count(self) -> int:
        """Images scored so far."""
        return self.overall.count

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, mean precision, mean recall) of the sweep over every image."""
        return self.overall.curves()

    def report(self) -> dict[str, Any]:
        """The overall mask metrics, then ``per_<group>``: {value: metrics} for each group."""
        result = self.overall.summary()
        for name, per_value in self._groups.items():
            result[f"per_{name}"] = {
                value: accumulator.summary() for value, accumulator in sorted(per_value.items())
            }
        return result


class EndToEndScorer:
    """The detect job's cascade: the mask if the image-level verdict is blurry, else empty.

    Scored on every image against its truth (empty for sharp images), so a sharp image called
    blurry costs precision, and counted: sharp images that end up with a non-empty mask.
    """

    def __init__(self, mask_threshold: float) -> None:
        self.mask_threshold = mask_threshold
        self.masks = metrics.MaskMetrics(threshold=mask_threshold)
        self.sharp_images = 0
        self.sharp_flagged = 0

    def add(
        self,
        labels: Sequence[int],
        verdicts: Sequence[bool],
        masks: Sequence[np.ndarray],
        truths: Sequence[np.ndarray],
    ) -> None:
        """Add a batch: label, blurry verdict, predicted mask and truth mask per image."""
        for label, blurry, mask, truth in zip(labels, verdicts, masks, truths):
            gated = mask if blurry else np.zeros_like(mask)
            self.masks.add(gated, truth)
            if not label:
                self.sharp_images += 1
                self.sharp_flagged += int(np.any(gated >= self.mask_threshold))

    def report(self) -> dict[str, Any]:
        """Mask metrics of the gated masks, and the sharp images given a non-empty mask."""
        return {
            **self.masks.summary(),
            "sharp_images_with_nonempty_mask": self.sharp_flagged,
            "sharp_images_with_nonempty_mask_fraction": self.sharp_flagged / self.sharp_images
            if self.sharp_images
            else None,
        }


class BaselineScorer:
    """Every registered baseline over a stream of images: per-image scores and the reports.

    Image-level baselines are scored by one classifier scorer each (``image_scorer`` makes it
    from the baseline's fitted threshold in ``calibration``, or None); maps are scored
    against the truth where there is one, and the end-to-end pair
    (:data:`END_TO_END_BASELINES`) is gated like the models where gate truths are given.
    """

    def __init__(
        self,
        calibration: Calibration | None,
        mask_threshold: float,
        image_scorer: Callable[[dict[str, Any] | None], ClassifierScorer],
    ) -> None:
        self.calibration = calibration or {}
        self.image_scorers = {
            baseline.name: image_scorer(self.calibration.get(baseline.name))
            for baseline in baselines.image_level_baselines()
        }
        self.maps = {
            baseline.name: MaskScorer(mask_threshold) for baseline in baselines.map_baselines()
        }
        self.end_to_end = EndToEndScorer(mask_threshold)

    def add(
        self,
        natives: Sequence[np.ndarray],
        labels: Sequence[int | None],
        truths: Sequence[np.ndarray | None],
        groups: Sequence[Groups],
        gate_truths: Sequence[np.ndarray] | None = None,
    ) -> list[dict[str, float]]:
        """Score a batch of native-size images.

        ``truths`` (None: none) are for the map metrics; ``gate_truths`` (every image of a
        data set, empty for sharp ones) for the end-to-end metrics.

        Returns:
            Each image's CSV columns: ``<baseline>_score`` and ``<map>_<metric>``.
        """
        gates = gate_truths if gate_truths is not None else [None] * len(natives)
        return [
            self._add_image(*image) for image in zip(natives, labels, truths, groups, gates)
        ]

    def _add_image(
        self,
        native: np.ndarray,
        label: int | None,
        truth: np.ndarray | None,
        groups: Groups,
        gate_truth: np.ndarray | None,
    ) -> dict[str, float]:
        columns: dict[str, float] = {}
        for baseline in baselines.image_level_baselines():
            score = float(baseline.compute(native))
            self.image_scorers[baseline.name].add([label], [score], [groups])
            columns[f"{baseline_key(baseline.name)}_score"] = score
        gate_name, map_name = END_TO_END_BASELINES
        for baseline in baselines.map_baselines():
            gated_here = (
                gate_truth is not None
                and baseline.name == map_name
                and gate_name in self.calibration
            )
            if truth is None and not gated_here:
                continue  # maps cost more; this one has nothing to be compared with
            blur_map = baseline.compute(native)
            if truth is not None:
                (scores,) = self.maps[baseline.name].add([blur_map], [truth], [groups])
                columns.update(prefixed(baseline_key(baseline.name), scores))
            if gated_here:
                gate_score = columns[f"{baseline_key(gate_name)}_score"]
                blurry = gate_score >= self.calibration[gate_name]["threshold"]
                self.end_to_end.add([label], [blurry], [blur_map], [gate_truth])
        return columns

    def image_level_reports(self) -> dict[str, dict[str, Any]]:
        """{image-level baseline: classifier report}."""
        return {name: scorer.report() for name, scorer in self.image_scorers.items()}

    def map_reports(self) -> dict[str, dict[str, Any]]:
        """{map baseline: mask metrics} for the maps that met a truth mask."""
        return {name: scorer.report() for name, scorer in self.maps.items() if scorer.count}

    def end_to_end_report(self) -> dict[str, Any]:
        """The gated pair's end-to-end metrics, naming the pair."""
        return {"pair": list(END_TO_END_BASELINES), **self.end_to_end.report()}

    def report(self) -> dict[str, Any]:
        """The catalogue ("baselines"), then each image-level baseline, then each map."""
        return {
            "baselines": baseline_catalogue(),
            **self.image_level_reports(),
            **self.map_reports(),
        }
