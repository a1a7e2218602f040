"""Losses, per-epoch metrics and compilation of the networks being trained.

The two custom losses are registered with Keras, so ``checkpoints/last.keras`` of a run loads
(with its compiled loss) once this module is imported.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from sbdn_pipeline.training.defaults import CLASSIFIER, LOSSES

# Output names of a classifier trained with deep supervision (see HighPassEvidenceClassifier).
CLASSIFIER_OUTPUT = "p_blurry"
BLUR_MAP_OUTPUT = "blur_map"


@keras.saving.register_keras_serializable(package="sbdn")
def dice_loss(y_true: Any, y_pred: Any) -> Any:
    """1 - soft Dice coefficient per image (smoothed by 1 so empty masks are not undefined)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = tuple(range(1, len(y_pred.shape)))
    overlap = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)


@keras.saving.register_keras_serializable(package="sbdn")
def bce_dice_loss(y_true: Any, y_pred: Any) -> Any:
    """Per-pixel binary cross-entropy (mean per image) plus Dice loss per image.

    Cross-entropy gives every pixel a gradient; Dice keeps small blurred regions from being
    drowned by a large sharp background.
    """
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = tuple(range(1, len(y_pred.shape)))
    cross_entropy = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=axes[:-1])
    return cross_entropy + dice_loss(y_true, y_pred)


def make_loss(name: str) -> Any:
    """Loss by name: "bce", "bce_dice" or "mse"."""
    if name == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "bce_dice":
        return bce_dice_loss
    if name == "mse":
        return keras.losses.MeanSquaredError(name="mse")
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")


def training_metrics(task: str) -> list[keras.metrics.Metric]:
    """Metrics reported per epoch (the validation loss alone drives checkpoints and stopping)."""
    if task == CLASSIFIER:
        return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    return [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.BinaryAccuracy(name="pixel_accuracy"),
    ]


def has_blur_map_output(model: keras.Model) -> bool:
    """True for a classifier built with its training-only blur-map output."""
    return BLUR_MAP_OUTPUT in getattr(model, "output_names", ()) and len(model.outputs) == 2


def compile_model(
    model: keras.Model,
    task: str,
    loss: str,
    learning_rate: float,
    blur_map_weight: float = 1.0,
) -> None:
    """Compile with Adam (its learning rate is then driven by :class:`TrainingMonitor`).

    A classifier with a blur-map output gets a second loss, per-cell cross-entropy against
    the blurred fraction of each cell, weighted by ``blur_map_weight``.
    """
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=5.0)
    if has_blur_map_output(model):
        model.compile(
            optimizer=optimizer,
            loss={CLASSIFIER_OUTPUT: make_loss(loss), BLUR_MAP_OUTPUT: make_loss("bce")},
            loss_weights={CLASSIFIER_OUTPUT: 1.0, BLUR_MAP_OUTPUT: blur_map_weight},
            metrics={CLASSIFIER_OUTPUT: training_metrics(task)},
        )
        return
    model.compile(optimizer=optimizer, loss=make_loss(loss), metrics=training_metrics(task))


def monitored_keys(model: keras.Model, task: str) -> tuple[str, str]:
    """(validation loss that picks the best epoch, metric drawn in the training curve)."""
    if has_blur_map_output(model):
        # The shipped network is the classifier: judge epochs by its own loss only.
        return f"val_{CLASSIFIER_OUTPUT}_loss", f"{CLASSIFIER_OUTPUT}_auc"
    return "val_loss", "auc" if task == CLASSIFIER else "mae"

