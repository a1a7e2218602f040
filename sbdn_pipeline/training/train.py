"""Training job: one network, one task, resumable, on a wall-clock budget.

``train()`` reads the synthetic TFRecords through :mod:`sbdn_pipeline.training.reader`,
builds a fresh network from :mod:`sbdn_pipeline.architectures` (or resumes the one in
``out_dir``) and hands both to :func:`fit`, which is the part that does not care where the data
comes from. Everything a run writes lives in ``out_dir``::

    out_dir/
      checkpoints/last.keras          model + optimizer after the latest epoch (for resuming)
      checkpoints/best.weights.h5     weights of the epoch with the lowest validation loss
      checkpoints/state.json          epoch counter, early-stopping state, elapsed time, history
      training_log.csv                one row per epoch (losses, metrics, learning rate, time)
      training_curve.png              the same, drawn
      model.keras                     the best epoch's network, without optimizer state
      train_summary.json              command, arguments, epochs, wall time, best metrics, sha256

A run that is killed (or stopped by its time budget) and started again with the same
``out_dir`` continues after the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from sbdn_pipeline import architectures, atomic
from sbdn_pipeline.inference import file_sha256
from sbdn_pipeline.training.defaults import (  # noqa: F401 - re-exported
    CLASSIFIER,
    DEFAULT_BLUR_MAP_WEIGHT,
    DEFAULT_COLOUR_JITTER,
    DEFAULT_LETTERBOX_FRACTION,
    DEFAULT_PATIENCE,
    DEFAULT_TURN_AND_FLIP,
    IDENTIFIER,
    LOSSES,
    TASKS,
)
from sbdn_pipeline.training.evaluate import write_csv, write_metrics_json

# Defaults per architecture, chosen so that one default model trains in about an hour on a
# 2-core CPU. Each network trains at its shipping input size (``default_input_size``): the
# efficient nets at 384 / 320 px, the originals at the 224 px of the original research.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "highpass-evidence-classifier": {
        "batch_size": 16,
        "epochs": 40,
        "learning_rate": 2e-3,
        "loss": "bce",
    },
    "resnet50": {
        "batch_size": 16,
        "epochs": 40,
        "learning_rate": 1e-3,
        "loss": "bce",
    },
    "highpass-unet": {
        "batch_size": 16,
        "epochs": 40,
        "learning_rate": 2e-3,
        "loss": "bce_dice",
    },
    "original-encoder-decoder": {
        "batch_size": 16,
        "epochs": 40,
        "learning_rate": 1e-3,
        "loss": "mse",
    },
}
# Output names of a classifier trained with deep supervision (see HighPassEvidenceClassifier).
CLASSIFIER_OUTPUT = "p_blurry"
BLUR_MAP_OUTPUT = "blur_map"
AUGMENT_SEED_OFFSET = 1_000_003
DEFAULT_WARMUP_STEPS = 100
DEFAULT_PROGRESS_INTERVAL_S = 60.0
# Both tasks train on every source group and on sharp and blurred examples alike by default.
# Measured (models/README.md): an identifier trained on blurred non-BSDS photos only marked
# most of each BSDS test photo blurred (mask IoU 0.644 vs 0.708 with everything), because it
# never saw a photo with natural depth of field or a frame with nothing blurred in it.

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.keras"
BEST_WEIGHTS = "best.weights.h5"
STATE_FILE = "state.json"
LOG_FILE = "training_log.csv"
CURVE_FILE = "training_curve.png"
MODEL_FILE = "model.keras"
SUMMARY_FILE = "train_summary.json"

STOP_EPOCHS = "completed_epochs"
STOP_EARLY = "early_stopping"
STOP_BUDGET = "time_budget"


# --- losses -----------------------------------------------------------------------------------


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


# --- results ----------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        out_dir: the run folder.
        model_path: the best epoch's network (``out_dir/model.keras``).
        model_sha256: hash of that file.
        epochs_run: epochs finished, counting earlier runs that were resumed.
        best_epoch: 1-based epoch with the lowest validation loss.
        best_val: validation metrics of that epoch.
        wall_time_s: training time, counting earlier runs that were resumed.
        stopped_because: "completed_epochs", "early_stopping" or "time_budget".
        summary_path: ``out_dir/train_summary.json``.
    """

    out_dir: str
    model_path: str
    model_sha256: str
    epochs_run: int
    best_epoch: int
    best_val: dict[str, float]
    wall_time_s: float
    stopped_because: str
    summary_path: str


# --- the per-batch / per-epoch machinery --------------------------------------------------------


def new_state() -> dict[str, Any]:
    """The resumable state of a run before its first epoch."""
    return {
        "epochs_done": 0,
        "best_val_loss": None,
        "best_epoch": 0,
        "epochs_without_improvement": 0,
        "elapsed_s": 0.0,
        "steps_per_epoch": None,
        "stopped_because": None,
        "history": [],
    }


class TrainingMonitor(keras.callbacks.Callback):
    """Everything that happens between batches and epochs, kept resumable in one state dict.

    * learning rate: linear warm-up, then cosine decay to ``min_learning_rate`` over the run,
      where progress is the larger of (steps done / steps planned) and (time used / time
      budget), so a budget-limited run still anneals fully;
    * wall-clock budget: stops after the batch that exhausts it (Keras still validates and
      ends the epoch, so the run ends on a checkpoint);
    * per epoch: history row, CSV log, training curve, best-weights checkpoint on validation
      loss, early stopping, a full ``last.keras`` checkpoint and ``state.json`` (written last,
      atomically, so a kill at any moment leaves a consistent pair), and a progress line;
    * within an epoch: a progress line every ``progress_interval_s`` (an epoch of the original
      ResNet-50 on 2 cores lasts over half an hour; silence that long looks like a hang).

    Args:
        out_dir: the run folder.
        state: resumable state (see :func:`new_state`), updated in place.
        epochs: planned epochs.
        learning_rate: peak learning rate.
        min_learning_rate: final learning rate of the cosine decay.
        warmup_steps: optimizer steps of linear warm-up.
        steps_per_epoch: batches per epoch when fixed; else learned from the first full epoch.
        time_budget_s: total training seconds across resumed runs; None for no budget.
        patience: epochs without a validation-loss improvement before stopping.
        plot_metric: metric drawn next to the loss in the training curve.
        monitor: the validation loss that decides the best epoch and early stopping.
        log: function printing one progress line.
        progress_interval_s: seconds between progress lines within an epoch; 0 for none.
    """

    def __init__(
        self,
        out_dir: str,
        state: dict[str, Any],
        *,
        epochs: int,
        learning_rate: float,
        min_learning_rate: float,
        warmup_steps: int,
        steps_per_epoch: int | None,
        time_budget_s: float | None,
        patience: int,
        plot_metric: str,
        monitor: str = "val_loss",
        log: Callable[[str], None] = print,
        progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.state = state
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.min_learning_rate = min_learning_rate
        self.warmup_steps = warmup_steps
        self.steps_per_epoch = steps_per_epoch
        self.time_budget_s = time_budget_s
        self.patience = patience
        self.plot_metric = plot_metric
        self.monitor = monitor
        self.log = log
        self.progress_interval_s = progress_interval_s
        self._run_start = time.monotonic()
        self._elapsed_before = float(state["elapsed_s"])
        self._batches_this_epoch = 0
        self._epoch_start = self._run_start
        self._epoch_number = 0
        self._last_progress = self._run_start

    # -- schedule and budget --

    def elapsed_s(self) -> float:
        """Training seconds so far, including earlier (resumed) runs."""
        return self._elapsed_before + time.monotonic() - self._run_start

    def _epoch_steps(self) -> int | None:
        """Batches per epoch: fixed, or learned from the first full epoch (None before)."""
        return self.steps_per_epoch or self.state.get("steps_per_epoch")

    def _planned_steps(self) -> int | None:
        steps = self._epoch_steps()
        return steps * self.epochs if steps else None

    def learning_rate_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` at the current elapsed time."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = 0.0
        planned = self._planned_steps()
        if planned:
            progress = max(
                progress, (step - self.warmup_steps) / max(planned - self.warmup_steps, 1)
            )
        if self.time_budget_s:
            progress = max(progress, self.elapsed_s() / self.time_budget_s)
        progress = min(progress, 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_learning_rate + (self.learning_rate - self.min_learning_rate) * cosine

    def _current_learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._run_start = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._batches_this_epoch = 0
        self._epoch_start = time.monotonic()
        self._last_progress = self._epoch_start
        self._epoch_number = epoch + 1

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.optimizer.learning_rate = self.learning_rate_at(step)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches_this_epoch += 1
        if self.time_budget_s and self.elapsed_s() >= self.time_budget_s:
            self.state["stopped_because"] = STOP_BUDGET
            self.model.stop_training = True
        now = time.monotonic()
        if self.progress_interval_s and now - self._last_progress >= self.progress_interval_s:
            self._last_progress = now
            self.log(self._batch_progress_line(logs or {}, now))

    # -- end of epoch --

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._batches_this_epoch == 0:
            raise ValueError(
                "the training data yielded no batch this epoch: the split is empty after "
                "filtering (source groups, positives only) or smaller than one batch"
            )
        logs = {key: float(value) for key, value in (logs or {}).items()}
        state = self.state
        finished_early = state["stopped_because"] == STOP_BUDGET
        if not finished_early and not self.steps_per_epoch and not state["steps_per_epoch"]:
            state["steps_per_epoch"] = self._batches_this_epoch
        row = {
            "epoch": epoch + 1,
            "steps": self._batches_this_epoch,
            "lr": self._current_learning_rate(),
            "epoch_time_s": round(time.monotonic() - self._epoch_start, 2),
            "elapsed_s": round(self.elapsed_s(), 2),
            **logs,
        }
        state["history"].append(row)
        state["epochs_done"] = epoch + 1
        state["elapsed_s"] = self.elapsed_s()

        checkpoints = os.path.join(self.out_dir, CHECKPOINT_DIR)
        val_loss = logs.get(self.monitor)
        improved = (
            val_loss is not None
            and math.isfinite(val_loss)
            and (state["best_val_loss"] is None or val_loss < state["best_val_loss"] - 1e-6)
        )
        if improved:
            state["best_val_loss"] = val_loss
            state["best_epoch"] = epoch + 1
            state["epochs_without_improvement"] = 0
            best = os.path.join(checkpoints, BEST_WEIGHTS)
            with atomic.local_path(best, ".weights.h5") as temporary:
                self.model.save_weights(temporary)
        else:
            state["epochs_without_improvement"] += 1
            if state["epochs_without_improvement"] >= self.patience and not finished_early:
                state["stopped_because"] = STOP_EARLY
                self.model.stop_training = True

        with atomic.local_path(os.path.join(checkpoints, LAST_CHECKPOINT), ".keras") as temporary:
            self.model.save(temporary)
        write_metrics_json(os.path.join(checkpoints, STATE_FILE), state)
        write_history(state["history"], self.out_dir, self.plot_metric)
        self.log(self._progress_line(row, improved))

    def _batch_progress_line(self, logs: dict[str, Any], now: float) -> str:
        """``  epoch 2/40  batch 120/343  loss 0.7012  1.9 s/batch  epoch ends in ~7 min``."""
        done = self._batches_this_epoch
        per_batch = (now - self._epoch_start) / max(done, 1)
        steps = self._epoch_steps()
        shown = [f"  epoch {self._epoch_number}/{self.epochs}", f"batch {done}/{steps or '?'}"]
        if "loss" in logs:
            shown.append(f"loss {float(logs['loss']):.4f}")
        shown.append(f"{per_batch:.2f} s/batch")
        if steps and steps > done:
            shown.append(f"epoch ends in ~{(steps - done) * per_batch / 60:.0f} min")
        return "  ".join(shown)

    def _progress_line(self, row: dict[str, Any], improved: bool) -> str:
        shown = [f"epoch {row['epoch']}/{self.epochs}"]
        shown_keys: list[str] = []
        for key in ("loss", "val_loss", self.monitor, self.plot_metric, f"val_{self.plot_metric}"):
            if key in shown_keys:
                continue
            shown_keys.append(key)
            if key in row:
                shown.append(f"{key} {row[key]:.4f}")
        shown.append(f"lr {row['lr']:.2e}")
        budget = f"/{self.time_budget_s:.0f}" if self.time_budget_s else ""
        shown.append(f"{row['epoch_time_s']:.0f}s (total {row['elapsed_s']:.0f}{budget}s)")
        if improved:
            shown.append("* best")
        return "  ".join(shown)


def write_history(history: Sequence[dict[str, Any]], out_dir: str, plot_metric: str) -> None:
    """Write ``training_log.csv`` and ``training_curve.png`` from the per-epoch rows."""
    if not history:
        return
    write_csv(os.path.join(out_dir, LOG_FILE), list(history))
    try:
        from sbdn_pipeline.training import plots

        plots.plot_training_curve(history, os.path.join(out_dir, CURVE_FILE), metric=plot_metric)
    except ImportError as exc:  # training must not die for want of a plotting library
        print(f"warning: no training curve: {exc}", file=sys.stderr)


# --- fitting ----------------------------------------------------------------------------------


def fit(
    model: keras.Model,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    out_dir: str,
    *,
    task: str,
    epochs: int,
    learning_rate: float,
    state: dict[str, Any] | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    time_budget_s: float | None = None,
    patience: int = DEFAULT_PATIENCE,
    warmup_steps: int = DEFAULT_WARMUP_STEPS,
    min_learning_rate_ratio: float = 0.01,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a compiled model on ready-made datasets, checkpointing into ``out_dir``.

    Args:
        model: a compiled network (fresh, or loaded from ``checkpoints/last.keras``).
        train_data: batches of (images, targets); repeated if ``steps_per_epoch`` is set.
        val_data: finite batches of (images, targets).
        out_dir: the run folder.
        task: "classifier" or "identifier" (chooses the metric in the progress lines).
        epochs: total planned epochs (including epochs finished in earlier runs).
        learning_rate: peak learning rate.
        state: resumable state from ``state.json``; None for a fresh run.
        steps_per_epoch: batches per epoch, or None for one pass over ``train_data``.
        validation_steps: batches of ``val_data`` per validation, or None for all.
        time_budget_s: total training seconds, or None.
        patience: epochs without validation-loss improvement before stopping.
        warmup_steps: optimizer steps of linear learning-rate warm-up.
        min_learning_rate_ratio: final learning rate as a fraction of the peak.
        log: progress printer.

    Returns:
        The final state (see :func:`new_state`), with "stopped_because" filled in.
    """
    state = state or new_state()
    os.makedirs(os.path.join(out_dir, CHECKPOINT_DIR), exist_ok=True)
    monitored_loss, plot_metric = monitored_keys(model, task)
    state["monitor"] = monitored_loss
    budget_spent = bool(time_budget_s) and state["elapsed_s"] >= time_budget_s
    finished = (
        state["epochs_done"] >= epochs or state["stopped_because"] == STOP_EARLY or budget_spent
    )
    monitor = TrainingMonitor(
        out_dir,
        state,
        epochs=epochs,
        learning_rate=learning_rate,
        min_learning_rate=learning_rate * min_learning_rate_ratio,
        warmup_steps=warmup_steps,
        steps_per_epoch=steps_per_epoch,
        time_budget_s=time_budget_s,
        patience=patience,
        plot_metric=plot_metric,
        monitor=monitored_loss,
        log=log,
    )
    if finished:
        if state["stopped_because"] != STOP_EARLY:
            out_of_epochs = state["epochs_done"] >= epochs
            state["stopped_because"] = STOP_EPOCHS if out_of_epochs else STOP_BUDGET
    else:
        state["stopped_because"] = None
        with warnings.catch_warnings():
            # Keras warns whenever a dataset of unknown length ends, which the finite
            # validation split does every epoch; empty training epochs raise in the monitor.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(
                train_data,
                validation_data=val_data,
                epochs=epochs,
                initial_epoch=state["epochs_done"],
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                callbacks=[monitor],
                verbose=0,
                shuffle=False,  # the tf.data pipeline shuffles
            )
    if state["stopped_because"] is None:
        budget_spent = bool(time_budget_s) and state["elapsed_s"] >= time_budget_s
        state["stopped_because"] = STOP_BUDGET if budget_spent else STOP_EPOCHS
    write_metrics_json(os.path.join(out_dir, CHECKPOINT_DIR, STATE_FILE), state)
    return state


def export_best_model(model: keras.Model, out_dir: str) -> str:
    """Save the best epoch's weights as ``out_dir/model.keras``, without optimizer or loss.

    The exported file is rebuilt from the architecture's config (without any training-only
    output), so it holds only what the detect job needs and loads with ``safe_mode=True`` after
    ``import sbdn_pipeline.architectures``.
    """
    best = os.path.join(out_dir, CHECKPOINT_DIR, BEST_WEIGHTS)
    if os.path.exists(best):
        model.load_weights(best)
    config = model.get_config()
    if config.get("blur_map_output"):
        config["blur_map_output"] = False  # training-only output: ship the classifier alone
    clean = type(model).from_config(config)
    for layer in clean.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    path = os.path.join(out_dir, MODEL_FILE)
    with atomic.local_path(path, ".keras") as temporary:
        clean.save(temporary)
    return path


# --- the job ----------------------------------------------------------------------------------


def resolve_source_groups(
    data_dir: str,
    source_groups: Sequence[str] | None,
    exclude_source_groups: Sequence[str] | None,
) -> list[str] | None:
    """Which source groups to train on (None = all).

    Explicit ``source_groups`` win. Otherwise every group listed in the data set manifest is
    used except ``exclude_source_groups`` (group names or name prefixes; none by default).
    """
    if source_groups:
        return list(source_groups)
    if not exclude_source_groups:
        return None
    available = manifest_source_groups(data_dir)
    if not available:
        raise ValueError(
            f"cannot exclude source groups {list(exclude_source_groups)}: the manifest in "
            f"{data_dir} lists no source groups; pass source_groups explicitly"
        )
    kept = [
        group
        for group in available
        if not any(group == prefix or group.startswith(prefix) for prefix in exclude_source_groups)
    ]
    if not kept:
        raise ValueError(
            f"excluding {list(exclude_source_groups)} leaves no source group of {available}"
        )
    return kept


def manifest_source_groups(data_dir: str) -> list[str]:
    """Source groups counted in ``data_dir/manifest.json`` (any split), sorted."""
    from sbdn_pipeline import features

    path = os.path.join(data_dir, features.MANIFEST_JSON)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"no {features.MANIFEST_JSON} in {data_dir}: "
            "is it a data set made by sbdn make-dataset?"
        )
    with tf.io.gfile.GFile(path, "r") as handle:
        manifest = json.load(handle)
    groups: set[str] = set()
    for counts in (manifest.get("splits") or {}).values():
        groups.update(str(group) for group in (counts.get(features.SOURCE_GROUP) or {}))
    return sorted(groups)


def _check_resumable(model: keras.Model, arch: str, image_size: int, out_dir: str) -> None:
    expected = architectures.architecture_class(arch)
    if type(model) is not expected or model.image_size != image_size:
        raise ValueError(
            f"{out_dir} holds a run of {type(model).__name__} at {model.image_size} px, not "
            f"{arch} at {image_size} px: use another --out, or start over with resume=False"
        )


def train(
    task: str,
    data_dir: str,
    arch: str,
    out_dir: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    time_budget_s: float | None = None,
    source_groups: Sequence[str] | None = None,
    exclude_source_groups: Sequence[str] | None = None,
    positives_only: bool = False,
    loss: str | None = None,
    patience: int = DEFAULT_PATIENCE,
    warmup_steps: int = DEFAULT_WARMUP_STEPS,
    shuffle_buffer: int = 256,
    cache: bool = False,
    letterbox_fraction: float = DEFAULT_LETTERBOX_FRACTION,
    colour_jitter: float = DEFAULT_COLOUR_JITTER,
    turn_and_flip: bool = DEFAULT_TURN_AND_FLIP,
    blur_map_weight: float = DEFAULT_BLUR_MAP_WEIGHT,
    max_crop_scale: float | None = None,
    init_from: str | None = None,
    resume: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a classifier or identifier on a synthetic data set; see the module docstring.

    Args:
        task: "classifier" or "identifier"; must match the architecture.
        data_dir: data set folder (``train/``, ``val/``, ``manifest.json``).
        arch: architecture name (see ``sbdn_pipeline.architectures.ARCHITECTURES``).
        out_dir: run folder (created; reused when resuming).
        epochs: planned epochs (default per architecture, :data:`ARCH_DEFAULTS`).
        batch_size: examples per batch (default per architecture).
        image_size: square input side S (default: the architecture's shipping size).
        learning_rate: peak Adam learning rate (default per architecture).
        seed: seeds Python, numpy, TensorFlow and the data order.
        steps_per_epoch: batches per epoch (the training data is repeated); None for one pass.
        validation_steps: validation batches per epoch; None for the whole split.
        time_budget_s: stop cleanly after this many training seconds (summed over resumes).
        source_groups: train only on these source groups.
        exclude_source_groups: leave these groups (or group-name prefixes) out; default none.
        positives_only: train only on blurred examples; default False (both tasks).
        loss: "bce", "bce_dice" or "mse" (default per architecture).
        patience: early stopping patience in epochs (on validation loss).
        warmup_steps: optimizer steps of linear learning-rate warm-up.
        shuffle_buffer: shuffle buffer of the reader.
        cache: let the reader cache decoded examples in memory.
        letterbox_fraction: share of training examples shown whole and letterboxed rather
            than as random crops (see :data:`DEFAULT_LETTERBOX_FRACTION`).
        colour_jitter: strength of random photometric changes of the training images
            (:func:`sbdn_pipeline.training.reader.jitter_colours`); 0 = none.
        turn_and_flip: also turn training views by random quarter turns and flip them
            upside down (:func:`sbdn_pipeline.training.reader.turn_and_flip_batches`).
        blur_map_weight: classifiers that support it (``blur_map_output``) also learn a coarse
            blur map from the masks, with this loss weight; 0 trains on labels alone.
        max_crop_scale: training crops are at most ``image_size * max_crop_scale`` pixels on a
            side before resizing to ``image_size``, so the network sees pixels within that
            factor of their stored scale (as tiled native-resolution inference shows them);
            None: up to the image's short side.
        init_from: a ``.keras`` model whose weights start a new run (warm start): every layer
            whose name and weight shapes match is copied; the rest starts fresh.
        resume: continue the run in ``out_dir`` if it has checkpoints; False starts over.
        model_kwargs: extra architecture arguments (e.g. narrower widths for tests).
        command: the command line recorded in the summary.
        log: progress printer.

    Returns:
        A :class:`TrainResult`.
    """
    from sbdn_pipeline.training import reader  # the shared tf.data reader

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    arch_task = architectures.task_of(arch)
    if arch_task != task:
        raise ValueError(f"architecture {arch!r} is an {arch_task}, not a {task}")
    defaults = ARCH_DEFAULTS.get(arch, {})
    epochs = int(epochs or defaults.get("epochs", 40))
    batch_size = int(batch_size or defaults.get("batch_size", 16))
    image_size = int(image_size or architectures.default_input_size(arch))
    learning_rate = float(learning_rate or defaults.get("learning_rate", 1e-3))
    loss = loss or defaults.get("loss", "bce" if task == CLASSIFIER else "bce_dice")
    groups = resolve_source_groups(data_dir, source_groups, exclude_source_groups)
    arguments = {
        "task": task,
        "data_dir": data_dir,
        "arch": arch,
        "out_dir": out_dir,
        "epochs": epochs,
        "batch_size": batch_size,
        "image_size": image_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "steps_per_epoch": steps_per_epoch,
        "validation_steps": validation_steps,
        "time_budget_s": time_budget_s,
        "source_groups": groups,
        "positives_only": positives_only,
        "loss": loss,
        "patience": patience,
        "warmup_steps": warmup_steps,
        "shuffle_buffer": shuffle_buffer,
        "cache": cache,
        "letterbox_fraction": letterbox_fraction,
        "colour_jitter": colour_jitter,
        "turn_and_flip": turn_and_flip,
        "model_kwargs": model_kwargs or {},
        "blur_map_weight": blur_map_weight if supports_blur_map(arch) else 0.0,
        "max_crop_scale": max_crop_scale,
        "init_from": init_from,
    }

    checkpoints = os.path.join(out_dir, CHECKPOINT_DIR)
    state_path = os.path.join(checkpoints, STATE_FILE)
    last_path = os.path.join(checkpoints, LAST_CHECKPOINT)
    keras.utils.set_random_seed(seed)
    if resume and os.path.exists(state_path) and os.path.exists(last_path):
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
        model = keras.saving.load_model(last_path, safe_mode=True)
        _check_resumable(model, arch, image_size, out_dir)
        log(f"resuming {arch} from {out_dir} after epoch {state['epochs_done']}")
    else:
        if os.path.isdir(checkpoints):
            shutil.rmtree(checkpoints)  # resume=False: start over
        state = new_state()
        kwargs = dict(model_kwargs or {})
        if blur_map_weight > 0 and supports_blur_map(arch):
            kwargs["blur_map_output"] = True
        model = architectures.build_model(arch, input_size=image_size, **kwargs)
        if init_from:
            copied, total = copy_matching_weights(init_from, model)
            log(f"warm start from {init_from}: {copied} of {total} layers with weights copied")
        compile_model(model, task, loss, learning_rate, blur_map_weight)
        log(f"training {arch} ({model.count_params():,} parameters) at {image_size} px")
    os.makedirs(checkpoints, exist_ok=True)

    if not 0.0 <= letterbox_fraction < 1.0:
        raise ValueError(f"letterbox_fraction must be in [0, 1), got {letterbox_fraction}")
    if not 0.0 <= colour_jitter <= 1.0:
        raise ValueError(f"colour_jitter must be in [0, 1], got {colour_jitter}")
    with_blur_map = has_blur_map_output(model)
    # A classifier taught where the blur is reads masks (one value per blur-map cell) and
    # derives its label from them exactly as the reader does for plain classifier batches.
    mask_stride = model.mask_stride
    if with_blur_map:
        map_side = int(model.outputs[1].shape[1])
        if image_size % map_side:
            raise ValueError(
                f"image_size {image_size} is not a multiple of the blur-map side {map_side}: "
                "use a multiple of 32"
            )
        mask_stride = image_size // map_side

    def dataset(split: str, training: bool, repeat: bool) -> tf.data.Dataset:
        data = reader.make_training_dataset(
            data_dir,
            split,
            task=IDENTIFIER if with_blur_map else task,
            image_size=image_size,
            batch_size=batch_size,
            training=training,
            # A resumed run sees a different shuffle order than the epochs it already did.
            seed=seed + state["epochs_done"],
            source_groups=groups,
            positives_only=positives_only,
            mask_downsample=mask_stride,
            cache=cache,
            shuffle_buffer=shuffle_buffer,
            repeat=repeat,
            max_crop_scale=max_crop_scale,
        )
        return data.map(label_and_blur_map) if with_blur_map else data

    train_data = dataset("train", True, repeat=steps_per_epoch is not None)
    if letterbox_fraction > 0:
        train_data = mix_in_letterboxed(
            train_data,
            dataset("train", False, repeat=True),
            letterbox_fraction,
            batch_size=batch_size,
            seed=seed + state["epochs_done"],
        )
    # Own seeds, so these draws do not repeat the crop stream's (seeded with seed + epochs).
    augment_seed = AUGMENT_SEED_OFFSET + seed + state["epochs_done"]
    train_data = reader.jitter_colour_batches(train_data, colour_jitter, seed=augment_seed)
    if turn_and_flip:
        train_data = reader.turn_and_flip_batches(train_data, seed=augment_seed + 1)
    _record_invocation(state, command)
    state = fit(
        model,
        train_data,
        dataset("val", False, repeat=False),
        out_dir,
        task=task,
        epochs=epochs,
        learning_rate=learning_rate,
        state=state,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        time_budget_s=time_budget_s,
        patience=patience,
        warmup_steps=warmup_steps,
        log=log,
    )
    return finish_run(model, state, out_dir, arguments=arguments, command=command, log=log)


def copy_matching_weights(source_path: str, model: keras.Model) -> tuple[int, int]:
    """Copy weights from a saved model into ``model`` layer by layer, matched by name.

    Returns:
        (layers copied, layers of ``model`` that have weights).

    Raises:
        ValueError: when no layer matches (most likely another architecture).
    """
    source = keras.saving.load_model(source_path, compile=False, safe_mode=True)
    by_name = {layer.name: layer for layer in source.layers}
    copied = total = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        total += 1
        match = by_name.get(layer.name)
        if match is None:
            continue
        weights = match.get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
            copied += 1
    if copied == 0:
        raise ValueError(f"{source_path}: no layer matches the new model; another architecture?")
    return copied, total


def _record_invocation(state: dict[str, Any], command: str | None) -> None:
    """Remember every command that worked on this run (the first one, then any resumes)."""
    state.setdefault("commands", []).append(command or "sbdn_pipeline.training.train.train(...)")


def supports_blur_map(arch: str) -> bool:
    """True if the architecture can be built with a training-only blur-map output."""
    import inspect

    return "blur_map_output" in inspect.signature(architectures.architecture_class(arch)).parameters


def label_and_blur_map(
    images: tf.Tensor, masks: tf.Tensor
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Identifier batches -> (images, {classifier label, blur map}) for deep supervision.

    The label follows the reader's classifier rule: blurry when at least
    ``reader.DEFAULT_MIN_BLURRED_FRACTION`` of the view is blurred (area-averaged cells keep
    the blurred fraction of the whole view).
    """
    from sbdn_pipeline.training import reader

    blurred = tf.reduce_mean(masks, axis=[1, 2, 3])
    labels = tf.cast(blurred >= reader.DEFAULT_MIN_BLURRED_FRACTION, tf.float32)[:, tf.newaxis]
    return images, {CLASSIFIER_OUTPUT: labels, BLUR_MAP_OUTPUT: masks}


def mix_in_letterboxed(
    crops: tf.data.Dataset,
    letterboxed: tf.data.Dataset,
    fraction: float,
    *,
    batch_size: int,
    seed: int,
) -> tf.data.Dataset:
    """Batches drawing each example from ``letterboxed`` with probability ``fraction``.

    ``crops`` sets the epoch: the mix ends when it does (``letterboxed`` repeats forever).
    The letterboxed stream comes in file order, so it is shuffled a little before mixing.
    """
    whole = letterboxed.unbatch().shuffle(4 * batch_size, seed=seed)
    mixed = tf.data.Dataset.sample_from_datasets(
        [crops.unbatch(), whole],
        weights=[1.0 - fraction, fraction],
        seed=seed,
        stop_on_empty_dataset=True,
    )
    return mixed.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def finish_run(
    model: keras.Model,
    state: dict[str, Any],
    out_dir: str,
    *,
    arguments: dict[str, Any],
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Export the best model and write ``train_summary.json``."""
    commands = state.get("commands") or [command or "sbdn_pipeline.training.train.train(...)"]
    model_path = export_best_model(model, out_dir)
    sha256 = file_sha256(model_path)
    best_epoch = int(state["best_epoch"])
    best_row = next((row for row in state["history"] if row["epoch"] == best_epoch), {})
    best_val = {key: value for key, value in best_row.items() if key.startswith("val_")}
    summary = {
        "command": commands[0],
        # A resumed run lists every invocation, the first one included.
        "commands": commands,
        "arguments": arguments,
        "architecture": type(model).__name__,
        "model_config": model.get_config(),
        "parameters": int(model.count_params()),
        "epochs_run": int(state["epochs_done"]),
        "stopped_because": state["stopped_because"],
        "wall_time_s": round(float(state["elapsed_s"]), 1),
        "best_epoch": best_epoch,
        "best_val": best_val,
        "model_file": MODEL_FILE,
        "model_sha256": sha256,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    summary_path = os.path.join(out_dir, SUMMARY_FILE)
    write_metrics_json(summary_path, summary)
    write_history(state["history"], out_dir, monitored_keys(model, model.task)[1])
    log(
        f"done: {state['epochs_done']} epochs ({state['stopped_because']}), "
        f"best epoch {best_epoch}, {model_path} sha256 {sha256[:16]}"
    )
    return TrainResult(
        out_dir=out_dir,
        model_path=model_path,
        model_sha256=sha256,
        epochs_run=int(state["epochs_done"]),
        best_epoch=best_epoch,
        best_val=best_val,
        wall_time_s=float(state["elapsed_s"]),
        stopped_because=state["stopped_because"],
        summary_path=summary_path,
    )
