"""The training loop: it learns, checkpoints, resumes, stops on time and early, exports."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from sbdn_pipeline.architectures import build_model
from sbdn_pipeline.training import train as training
from tests.training import blur_samples

SIZE = 32
TINY_CLASSIFIER = {
    "stem_filters": 8,
    "stage_filters": [8, 16, 16, 16],
    "stage_blocks": [1, 1, 1, 1],
    "evidence_filters": 16,
    "dropout": 0.0,
    # Fast-moving batch-norm statistics: these runs are a few dozen steps long.
    "batch_norm_momentum": 0.8,
}
TINY_UNET = {
    "encoder_filters": [8, 8, 16, 16, 16],
    "encoder_blocks": [0, 1, 1, 1, 1],
    "batch_norm_momentum": 0.8,
}


def _datasets(images: np.ndarray, targets: np.ndarray, batch_size: int = 8, repeat: bool = False):
    train_data = tf.data.Dataset.from_tensor_slices((images, targets)).shuffle(64, seed=0)
    if repeat:
        train_data = train_data.repeat()
    val_data = tf.data.Dataset.from_tensor_slices((images, targets))
    return train_data.batch(batch_size), val_data.batch(batch_size)


def _tiny_classifier(learning_rate: float = 3e-3) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model("highpass-evidence-classifier", input_size=SIZE, **TINY_CLASSIFIER)
    training.compile_model(model, "classifier", "bce", learning_rate)
    return model


def test_classifier_training_lowers_the_loss_and_exports_a_loadable_model(tmp_path):
    images, labels = blur_samples.classifier_arrays(32, SIZE)
    # Enough steps for the batch-norm moving averages that validation uses to catch up.
    train_data, val_data = _datasets(images, labels, repeat=True)
    model = _tiny_classifier()
    before = model.evaluate(val_data, verbose=0, return_dict=True)["loss"]
    lines: list[str] = []

    state = training.fit(
        model, train_data, val_data, str(tmp_path), task="classifier", epochs=5,
        steps_per_epoch=40, learning_rate=3e-3, warmup_steps=10, log=lines.append,
    )

    assert state["stopped_because"] == "completed_epochs"
    assert state["epochs_done"] == 5 and len(lines) == 5
    assert min(row["val_loss"] for row in state["history"]) < 0.7 * before
    for name in ("training_log.csv", "training_curve.png"):
        assert os.path.getsize(tmp_path / name) > 0
    assert "val_auc" in lines[-1]

    result = training.finish_run(model, state, str(tmp_path), arguments={"epochs": 5})
    reloaded = keras.saving.load_model(result.model_path, safe_mode=True)
    assert getattr(reloaded, "optimizer", None) is None  # the shipped file is the network only
    model.load_weights(str(tmp_path / "checkpoints" / "best.weights.h5"))
    np.testing.assert_allclose(reloaded.predict(images[:4], verbose=0), model.predict(images[:4], verbose=0), atol=1e-5)
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["model_sha256"] == result.model_sha256 == training.file_sha256(result.model_path)
    assert summary["best_epoch"] == result.best_epoch
    assert summary["best_val"]["val_loss"] == min(row["val_loss"] for row in state["history"])


def test_identifier_training_with_bce_dice_lowers_the_loss(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model("highpass-unet", input_size=SIZE, **TINY_UNET)
    training.compile_model(model, "identifier", "bce_dice", 3e-3)
    images, masks = blur_samples.identifier_arrays(16, SIZE, model.mask_stride)
    train_data, val_data = _datasets(images, masks, repeat=True)
    before = model.evaluate(val_data, verbose=0, return_dict=True)["loss"]

    state = training.fit(
        model, train_data, val_data, str(tmp_path), task="identifier", epochs=3,
        steps_per_epoch=30, learning_rate=3e-3, warmup_steps=10, log=lambda line: None,
    )

    assert min(row["val_loss"] for row in state["history"]) < 0.8 * before
    assert "val_mae" in state["history"][0]


def test_killed_run_resumes_after_its_last_finished_epoch(tmp_path):
    images, labels = blur_samples.classifier_arrays(16, SIZE)
    train_data, val_data = _datasets(images, labels)
    model = _tiny_classifier()
    training.fit(model, train_data, val_data, str(tmp_path), task="classifier", epochs=1,
                 learning_rate=3e-3, warmup_steps=2, log=lambda line: None)
    # A new process would find exactly these two files.
    with open(tmp_path / "checkpoints" / "state.json", encoding="utf-8") as handle:
        state = json.load(handle)
    assert state["steps_per_epoch"] == 2  # learned from the first full pass
    resumed = keras.saving.load_model(str(tmp_path / "checkpoints" / "last.keras"), safe_mode=True)
    assert int(resumed.optimizer.iterations) == 2

    state = training.fit(resumed, train_data, val_data, str(tmp_path), task="classifier", epochs=3,
                         learning_rate=3e-3, state=state, warmup_steps=2, log=lambda line: None)

    assert [row["epoch"] for row in state["history"]] == [1, 2, 3]
    assert int(resumed.optimizer.iterations) == 6  # the optimizer state came back too
    # Nothing left to do: a further call trains no more.
    again = training.fit(resumed, train_data, val_data, str(tmp_path), task="classifier", epochs=3,
                         learning_rate=3e-3, state=state, log=lambda line: None)
    assert again["epochs_done"] == 3 and int(resumed.optimizer.iterations) == 6


def test_time_budget_stops_cleanly_after_one_batch(tmp_path):
    images, labels = blur_samples.classifier_arrays(32, SIZE)
    train_data, val_data = _datasets(images, labels)

    state = training.fit(_tiny_classifier(), train_data, val_data, str(tmp_path), task="classifier",
                         epochs=5, learning_rate=3e-3, time_budget_s=1e-3, log=lambda line: None)

    assert state["stopped_because"] == "time_budget"
    assert state["epochs_done"] == 1
    assert state["history"][0]["steps"] == 1
    assert "val_loss" in state["history"][0]  # the cut epoch was still validated
    assert os.path.exists(tmp_path / "checkpoints" / "last.keras")


def test_early_stopping_when_validation_loss_stops_improving(tmp_path):
    images, labels = blur_samples.classifier_arrays(16, SIZE)
    train_data, val_data = _datasets(images, labels)

    # A zero learning rate never changes the weights, so validation loss never improves.
    state = training.fit(_tiny_classifier(0.0), train_data, val_data, str(tmp_path),
                         task="classifier", epochs=10, learning_rate=0.0, patience=2,
                         log=lambda line: None)

    assert state["stopped_because"] == "early_stopping"
    assert state["epochs_done"] == 3 and state["best_epoch"] == 1


def test_learning_rate_warms_up_then_follows_cosine_to_the_floor(tmp_path):
    monitor = training.TrainingMonitor(
        str(tmp_path), training.new_state(), epochs=10, learning_rate=1.0, min_learning_rate=0.01,
        warmup_steps=10, steps_per_epoch=11, time_budget_s=None, patience=3, plot_metric="auc",
    )
    assert monitor.learning_rate_at(0) == pytest.approx(0.1)
    assert monitor.learning_rate_at(9) == pytest.approx(1.0)
    # 110 planned steps, 10 of warm-up: halfway through the cosine at step 60.
    assert monitor.learning_rate_at(60) == pytest.approx(0.505)
    assert monitor.learning_rate_at(110) == pytest.approx(0.01)
    assert monitor.learning_rate_at(500) == pytest.approx(0.01)


def test_dice_loss_by_hand():
    truth = np.array([[[[1.0], [0.0]]]], dtype="float32")  # (1, 1, 2, 1)
    prediction = np.array([[[[0.5], [0.5]]]], dtype="float32")
    # overlap 0.5, total 1 + 1 = 2 -> 1 - (2 * 0.5 + 1) / (2 + 1) = 1/3
    assert float(training.dice_loss(truth, prediction)[0]) == pytest.approx(1 / 3)
    perfect = float(training.bce_dice_loss(truth, truth)[0])
    assert perfect == pytest.approx(0.0, abs=1e-4)


def test_task_and_architecture_must_agree(tmp_path):
    with pytest.raises(ValueError, match="is an identifier, not a classifier"):
        training.train("classifier", str(tmp_path), "highpass-unet", str(tmp_path / "out"))
