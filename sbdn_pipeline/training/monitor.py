"""What happens between batches and epochs of a run, and the files it keeps up to date.

:class:`TrainingMonitor` is the Keras callback that drives the learning rate, enforces the
time budget, checkpoints every epoch into ``out_dir/checkpoints/`` and writes the history
(``training_log.csv``, ``training_curve.png``). Its state dict (:func:`new_state`) is what
``checkpoints/state.json`` holds, so a killed run resumes from it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras

from sbdn_pipeline import atomic
from sbdn_pipeline.training.evaluation_outputs import write_csv, write_metrics_json

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.keras"
BEST_WEIGHTS = "best.weights.h5"
STATE_FILE = "state.json"
LOG_FILE = "training_log.csv"
CURVE_FILE = "training_curve.png"

STOP_EPOCHS = "completed_epochs"
STOP_EARLY = "early_stopping"
STOP_BUDGET = "time_budget"

DEFAULT_PROGRESS_INTERVAL_S = 60.0


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

