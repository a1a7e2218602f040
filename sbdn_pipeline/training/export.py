"""The end of a training run: the shipped ``model.keras`` and ``train_summary.json``."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from sbdn_pipeline import atomic
from sbdn_pipeline.inference import file_sha256
from sbdn_pipeline.training.evaluation_outputs import write_metrics_json
from sbdn_pipeline.training.losses import monitored_keys
from sbdn_pipeline.training.monitor import BEST_WEIGHTS, CHECKPOINT_DIR, write_history

MODEL_FILE = "model.keras"
SUMMARY_FILE = "train_summary.json"
# Recorded for runs started from Python without a command line.
PYTHON_COMMAND = "sbdn_pipeline.training.train.train(...)"


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


def finish_run(
    model: keras.Model,
    state: dict[str, Any],
    out_dir: str,
    *,
    arguments: dict[str, Any],
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Export the best model and write ``train_summary.json``."""
    model_path = export_best_model(model, out_dir)
    sha256 = file_sha256(model_path)
    best_epoch = int(state["best_epoch"])
    best_row = next((row for row in state["history"] if row["epoch"] == best_epoch), {})
    best_val = {key: value for key, value in best_row.items() if key.startswith("val_")}
    summary = {
        **run_summary(model, state, arguments),
        "best_epoch": best_epoch,
        "best_val": best_val,
        "model_file": MODEL_FILE,
        "model_sha256": sha256,
        **_provenance(),
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


def run_summary(model: keras.Model, state: dict[str, Any], arguments: dict[str, Any]) -> dict:
    """How the run was asked for and what it trained (the head of ``train_summary.json``)."""
    commands = state.get("commands") or [PYTHON_COMMAND]
    return {
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
    }


def _provenance() -> dict[str, Any]:
    """When, with which versions and on what machine (the tail of ``train_summary.json``)."""
    return {
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
