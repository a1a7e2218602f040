"""Training job: one network, one task, resumable, on a wall-clock budget.

``train(config)`` checks the data set, opens the run in ``config.out_dir`` (resumed, or a fresh
network from :mod:`sbdn_pipeline.architectures`), builds the batches
(:mod:`sbdn_pipeline.training.datasets`), hands them to :func:`fit`, the part that does not care
where the data comes from, and exports the best epoch. Everything a run writes lives in
``out_dir``::

    out_dir/
      checkpoints/last.keras          model + optimizer after the latest epoch (for resuming)
      checkpoints/best.weights.h5     weights of the epoch with the lowest validation loss
      checkpoints/state.json          epoch counter, early-stopping state, elapsed time, history
      training_log.csv                one row per epoch (losses, metrics, learning rate, time)
      training_curve.png              the same, drawn
      model.keras                     the best epoch's network, without optimizer state
      train_summary.json              command, arguments, epochs, wall time, best metrics, sha256

A run that is killed (or stopped by its time budget) and started again with the same
``out_dir`` continues after the last finished epoch. Nothing is written (and no old checkpoint
deleted) before the config, the data set and the network have all been checked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from sbdn_pipeline import architectures
from sbdn_pipeline.training import datasets
from sbdn_pipeline.training.config import ARCH_DEFAULTS, DEFAULT_WARMUP_STEPS, TrainConfig
from sbdn_pipeline.training.defaults import DEFAULT_PATIENCE
from sbdn_pipeline.training.evaluation_outputs import write_metrics_json
from sbdn_pipeline.training.export import PYTHON_COMMAND, TrainResult, finish_run
from sbdn_pipeline.training.datasets import label_and_blur_map, resolve_source_groups
from sbdn_pipeline.training.losses import bce_dice_loss, compile_model, dice_loss, monitored_keys
from sbdn_pipeline.training.monitor import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    STATE_FILE,
    STOP_BUDGET,
    STOP_EARLY,
    STOP_EPOCHS,
    TrainingMonitor,
    new_state,
)

# Public names; the re-exported ones stay importable from here as before the split.
__all__ = [
    "ARCH_DEFAULTS",
    "OpenedRun",
    "TrainConfig",
    "TrainResult",
    "TrainingMonitor",
    "bce_dice_loss",
    "build_network",
    "compile_model",
    "copy_matching_weights",
    "dice_loss",
    "fit",
    "fit_run",
    "label_and_blur_map",
    "new_state",
    "open_run",
    "resolve_source_groups",
    "train",
]


@dataclasses.dataclass
class OpenedRun:
    """The network and resumable state of a run, before anything is written.

    Attributes:
        model: a compiled network: fresh, or loaded from ``checkpoints/last.keras``.
        state: the resumable state (see :func:`new_state`).
        resumed: True when both came from the checkpoints in ``out_dir``.
    """

    model: keras.Model
    state: dict[str, Any]
    resumed: bool


# --- the job ----------------------------------------------------------------------------------


def train(config: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Train a classifier or identifier on a synthetic data set; see the module docstring.

    Args:
        config: what to train, on what, and how (validated when it was built).
        log: progress printer.

    Raises:
        FileNotFoundError, ValueError: a data set, resumed run or network that does not fit
            the config; raised before anything in ``config.out_dir`` changes.
    """
    source_groups = datasets.check_data_set(config)
    run = open_run(config, log)
    train_data, val_data = datasets.make_datasets(
        config, run.model, source_groups, run.state["epochs_done"]
    )
    state = fit_run(config, run, train_data, val_data, log)
    arguments = config.recorded_arguments(source_groups)
    return finish_run(run.model, state, config.out_dir, arguments=arguments, log=log)


def open_run(config: TrainConfig, log: Callable[[str], None] = print) -> OpenedRun:
    """Resume the run in ``out_dir`` (``config.resume`` and both checkpoints there), or start one.

    Reads only: a fresh run's old checkpoints are deleted later, by :func:`fit_run`.
    """
    checkpoints = os.path.join(config.out_dir, CHECKPOINT_DIR)
    state_path = os.path.join(checkpoints, STATE_FILE)
    last_path = os.path.join(checkpoints, LAST_CHECKPOINT)
    keras.utils.set_random_seed(config.seed)
    if not (config.resume and os.path.exists(state_path) and os.path.exists(last_path)):
        return OpenedRun(build_network(config, log), new_state(), resumed=False)
    with open(state_path, encoding="utf-8") as handle:
        state = json.load(handle)
    model = keras.saving.load_model(last_path, safe_mode=True)
    expected = architectures.architecture_class(config.arch)
    if type(model) is not expected or model.image_size != config.image_size:
        raise ValueError(
            f"{config.out_dir} holds a run of {type(model).__name__} at {model.image_size} px, "
            f"not {config.arch} at {config.image_size} px: use another --out, or start over "
            "with resume=False"
        )
    log(f"resuming {config.arch} from {config.out_dir} after epoch {state['epochs_done']}")
    return OpenedRun(model, state, resumed=True)


def build_network(config: TrainConfig, log: Callable[[str], None] = print) -> keras.Model:
    """A fresh compiled network as configured, warm-started from ``config.init_from`` if set."""
    kwargs = dict(config.model_kwargs)
    if config.blur_map_weight > 0:  # the config zeroes it where there is no blur-map output
        kwargs["blur_map_output"] = True
    model = architectures.build_model(config.arch, input_size=config.image_size, **kwargs)
    if config.init_from:
        copied, total = copy_matching_weights(config.init_from, model)
        log(f"warm start from {config.init_from}: {copied} of {total} layers with weights copied")
    compile_model(model, config.task, config.loss, config.learning_rate, config.blur_map_weight)
    log(f"training {config.arch} ({model.count_params():,} parameters) at {config.image_size} px")
    return model


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


def fit_run(
    config: TrainConfig,
    run: OpenedRun,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """:func:`fit` as configured; the run's first write (a fresh run drops old checkpoints)."""
    checkpoints = os.path.join(config.out_dir, CHECKPOINT_DIR)
    if not run.resumed and os.path.isdir(checkpoints):
        shutil.rmtree(checkpoints)  # resume=False, or no complete checkpoint: start over
    # Every command that worked on this run: the first one, then any resumes.
    run.state.setdefault("commands", []).append(config.command or PYTHON_COMMAND)
    return fit(
        run.model,
        train_data,
        val_data,
        config.out_dir,
        task=config.task,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        state=run.state,
        steps_per_epoch=config.steps_per_epoch,
        validation_steps=config.validation_steps,
        time_budget_s=config.time_budget_s,
        patience=config.patience,
        warmup_steps=config.warmup_steps,
        log=log,
    )


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

    ``train_data`` (batches of (images, targets)) is repeated if ``steps_per_epoch`` is set;
    ``val_data`` is finite. ``epochs`` and ``time_budget_s`` count earlier, resumed runs of
    ``state`` (from ``state.json``; None for a fresh run) too. ``task`` picks the metric of
    the progress lines; the learning rate warms up over ``warmup_steps`` to ``learning_rate``
    and decays to ``learning_rate * min_learning_rate_ratio`` (see :class:`TrainingMonitor`,
    which also explains ``patience``).

    Returns:
        The final state (see :func:`new_state`), with "stopped_because" filled in.
    """
    state = state or new_state()
    os.makedirs(os.path.join(out_dir, CHECKPOINT_DIR), exist_ok=True)
    monitored_loss, plot_metric = monitored_keys(model, task)
    state["monitor"] = monitored_loss
    state["stopped_because"] = _reason_to_stop(state, epochs, time_budget_s)
    if state["stopped_because"] is None:
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
        _keras_fit(model, train_data, val_data, monitor, epochs, steps_per_epoch, validation_steps)
        if state["stopped_because"] is None:  # not stopped early nor cut by the budget mid-run
            spent = _budget_spent(state, time_budget_s)
            state["stopped_because"] = STOP_BUDGET if spent else STOP_EPOCHS
    write_metrics_json(os.path.join(out_dir, CHECKPOINT_DIR, STATE_FILE), state)
    return state


def _budget_spent(state: dict[str, Any], time_budget_s: float | None) -> bool:
    return bool(time_budget_s) and state["elapsed_s"] >= time_budget_s


def _reason_to_stop(state: dict[str, Any], epochs: int, time_budget_s: float | None) -> str | None:
    """Why a run is over before it (re)starts: None while epochs and budget are left."""
    if state["stopped_because"] == STOP_EARLY:
        return STOP_EARLY
    if state["epochs_done"] >= epochs:
        return STOP_EPOCHS
    return STOP_BUDGET if _budget_spent(state, time_budget_s) else None


def _keras_fit(
    model: keras.Model,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    monitor: TrainingMonitor,
    epochs: int,
    steps_per_epoch: int | None,
    validation_steps: int | None,
) -> None:
    """Keras ``fit`` from the epoch after ``monitor.state``'s last, driven by ``monitor``."""
    with warnings.catch_warnings():
        # Keras warns whenever a dataset of unknown length ends, which the finite
        # validation split does every epoch; empty training epochs raise in the monitor.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=epochs,
            initial_epoch=monitor.state["epochs_done"],
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            callbacks=[monitor],
            verbose=0,
            shuffle=False,  # the tf.data pipeline shuffles
        )
