"""Figures of the training and evaluation jobs (matplotlib, written straight to PNG files).

matplotlib is imported lazily with the non-interactive Agg backend, so these functions work on
headless machines and importing this module costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sbdn_pipeline import atomic
from sbdn_pipeline.training import metrics

if TYPE_CHECKING:
    from sbdn_pipeline.training.scorers import ClassifierScorer, MaskScorer


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Write next to the target, then rename, so a reader never sees half a PNG.
    try:
        with atomic.local_path(path, ".png") as temporary:
            figure.savefig(temporary, dpi=110, bbox_inches="tight")
    finally:
        _pyplot().close(figure)
    return path


def plot_training_curve(
    history: Sequence[Mapping[str, float]], path: str, metric: str | None = None, title: str = ""
) -> str:
    """Loss (and one metric) per epoch, training and validation, plus the learning rate.

    Args:
        history: one mapping per epoch with keys like "epoch", "loss", "val_loss", "lr".
        path: PNG file to write.
        metric: name of a metric to draw in a second panel (e.g. "auc"); skipped if absent.
        title: figure title.
    """
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    panels = 2 if metric and any(metric in row for row in history) else 1
    figure, axes = plt.subplots(1, panels + 1, figsize=(5 * (panels + 1), 3.6), squeeze=False)
    axes = axes[0]

    def draw(axis: Any, key: str, label: str) -> None:
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [row.get(prefix + key, np.nan) for row in history]
            axis.plot(epochs, values, style, markersize=3, label=f"{prefix or 'train_'}{label}")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()

    draw(axes[0], "loss", "loss")
    axes[0].set_ylabel("loss")
    if panels == 2:
        draw(axes[1], metric, metric)
        axes[1].set_ylabel(metric)
    axes[-1].plot(epochs, [row.get("lr", np.nan) for row in history], "-", color="gray")
    axes[-1].set_ylabel("learning rate (end of epoch)")
    axes[-1].set_xlabel("epoch")
    axes[-1].grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()  # keeps the y labels of neighbouring panels apart
    return _save(figure, path)


def plot_roc_curves(curves: Mapping[str, tuple[Any, Any, float]], path: str) -> str:
    """ROC curves: ``curves`` maps a name to (false positive rates, true positive rates, AUC)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.8, 4.5))
    for name, (fpr, tpr, auc) in curves.items():
        axis.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], ":", color="gray")
    return _save_unit_curves(figure, axis, path, "false positive rate (sharp called blurry)",
                             "true positive rate (blurry found)", "lower right")


def plot_confusion_matrix(matrix: Any, path: str, title: str = "") -> str:
    """2x2 confusion matrix [[TN, FP], [FN, TP]] as an annotated heat map."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(3.8, 3.4))
    axis.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axis.text(column, row, str(int(count)), ha="center", va="center", color=colour)
    axis.set_xticks([0, 1], ["sharp", "blurry"])
    axis.set_yticks([0, 1], ["sharp", "blurry"])
    axis.set_xlabel("verdict")
    axis.set_ylabel("truth")
    if title:
        axis.set_title(title, fontsize=9)
    return _save(figure, path)


def plot_group_bars(
    values: Mapping[str, Mapping[str, float]],
    path: str,
    ylabel: str = "accuracy",
    title: str = "",
    counts: Mapping[str, int] | None = None,
) -> str:
    """Grouped bars: ``values`` maps a series (model) name to {group: value}.

    Args:
        values: e.g. {"classifier": {"motion": 0.97, ...}, "laplacian-variance": {...}}.
        path: PNG file to write.
        ylabel: y-axis label.
        title: figure title.
        counts: examples per group, shown under the group names.
    """
    plt = _pyplot()
    groups = sorted({group for series in values.values() for group in series})
    width = 0.8 / max(len(values), 1)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) + 2), 3.8))
    positions = np.arange(len(groups))
    for index, (name, series) in enumerate(values.items()):
        heights = [series.get(group, np.nan) for group in groups]
        axis.bar(positions + (index - (len(values) - 1) / 2) * width, heights, width, label=name)
    labels = [
        f"{group}\n(n={counts[group]})" if counts and group in counts else group for group in groups
    ]
    axis.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel(ylabel)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=10)
    return _save(figure, path)


def plot_precision_recall_curves(curves: Mapping[str, tuple[Any, Any]], path: str) -> str:
    """Mean mask precision-recall curves: ``curves`` maps a name to (recalls, precisions)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.8, 4.5))
    for name, (recall, precision) in curves.items():
        axis.plot(recall, precision, label=name)
    return _save_unit_curves(figure, axis, path, "recall (blurred pixels found)", "precision",
                             "lower left")


def _save_unit_curves(figure: Any, axis: Any, path: str, xlabel: str, ylabel: str,
                      legend_at: str) -> str:
    """Label, bound to the unit square (a little headroom for curves at 1), save."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.grid(alpha=0.3)
    axis.legend(loc=legend_at, fontsize=8)
    return _save(figure, path)


# --- the figures of a data set evaluation -----------------------------------------------------


def write_dataset_plots(
    report: Mapping[str, Any],
    out_dir: str,
    classifier_scorers: Mapping[str, ClassifierScorer],
    mask_scorers: Mapping[str, MaskScorer],
) -> list[str]:
    """ROC, confusion matrices, accuracy per kind and strength, mask PR curves, per-kind bars.

    Args:
        report: the evaluation's report (the parts named by the scorers are drawn).
        out_dir: folder the PNG files go to.
        classifier_scorers: {name: :class:`~sbdn_pipeline.training.scorers.ClassifierScorer`}
            of the classifier and each image-level baseline, in the order of the legends.
        mask_scorers: {name: :class:`~sbdn_pipeline.training.scorers.MaskScorer`} of the
            identifier and each map baseline.

    Returns:
        The file names written.
    """
    series = {name: scorer for name, scorer in classifier_scorers.items() if name in report}
    masks = {
        name: scorer for name, scorer in mask_scorers.items() if name in report and scorer.count
    }
    written = []
    if series:
        written += _classifier_plots(report, out_dir, series)
    if masks:
        written += _mask_plots(report, out_dir, masks)
    return [os.path.basename(path) for path in written]


def _classifier_plots(
    report: Mapping[str, Any], out_dir: str, series: Mapping[str, ClassifierScorer]
) -> list[str]:
    curves = {}
    for name, scorer in series.items():
        fpr, tpr, _ = metrics.roc_curve(scorer.labels, scorer.scores)
        curves[name] = (fpr, tpr, report[name]["roc_auc"])
    written = [plot_roc_curves(curves, os.path.join(out_dir, "roc.png"))]
    for name in series:
        matrix = report[name]["confusion_matrix"]
        written.append(
            plot_confusion_matrix(
                [[matrix["tn"], matrix["fp"]], [matrix["fn"], matrix["tp"]]],
                os.path.join(out_dir, f"confusion_matrix_{name}.png"),
                title=f"{name} at threshold {report[name]['threshold']:.3g}",
            )
        )
    first = next(iter(series))
    for group, file_name, title in (
        ("blur_kind", "accuracy_per_blur_kind.png", "accuracy per blur kind ('none' = sharp)"),
        ("strength_bucket", "accuracy_per_strength.png", "accuracy per blur strength"),
    ):
        values = {
            name: {k: v["accuracy"] for k, v in report[name][f"accuracy_per_{group}"].items()}
            for name in series
        }
        counts = {k: v["n"] for k, v in report[first][f"accuracy_per_{group}"].items()}
        written.append(
            plot_group_bars(values, os.path.join(out_dir, file_name), title=title, counts=counts)
        )
    return written


def _mask_plots(
    report: Mapping[str, Any], out_dir: str, masks: Mapping[str, MaskScorer]
) -> list[str]:
    curves = {}
    for name, scorer in masks.items():
        _, precision, recall = scorer.curves()
        curves[f"{name} (max F {report[name]['max_f_beta']:.3f})"] = (recall, precision)
    values = {
        name: {kind: part["max_f_beta"] for kind, part in report[name]["per_blur_kind"].items()}
        for name in masks
    }
    return [
        plot_precision_recall_curves(curves, os.path.join(out_dir, "identifier_pr_curve.png")),
        plot_group_bars(
            values,
            os.path.join(out_dir, "identifier_max_f_beta_per_blur_kind.png"),
            ylabel="max F-beta",
            title="blur masks per blur kind (blurred images)",
        ),
    ]
