"""The training loop: it learns, checkpoints, resumes, stops on time and early, exports."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from sbdn_pipeline import inference
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


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = str(tmp_path_factory.mktemp("tiny_data"))
    blur_samples.write_dataset(folder, {"train": 24, "val": 8})
    return folder


def test_classifier_training_on_generated_tfrecords_lowers_the_loss(tiny_data, tmp_path):
    lines: list[str] = []
    config = training.TrainConfig(
        task="classifier",
        data_dir=tiny_data,
        arch="highpass-evidence-classifier",
        out_dir=str(tmp_path),
        epochs=4,
        steps_per_epoch=30,
        batch_size=8,
        image_size=SIZE,
        learning_rate=3e-3,
        warmup_steps=10,
        model_kwargs=TINY_CLASSIFIER,
        command="pytest",
    )
    result = training.train(config, log=lines.append)

    history = _history(tmp_path)
    assert result.epochs_run == 4 and result.stopped_because == "completed_epochs"
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    # Trained with the blur-map output; the best epoch is judged by the classifier loss alone,
    # which ends well below chance on the balanced validation split.
    assert result.best_val["val_p_blurry_loss"] == min(row["val_p_blurry_loss"] for row in history)
    assert result.best_val["val_p_blurry_loss"] < 0.8 * np.log(2.0)
    assert any("val_p_blurry_auc" in line for line in lines)
    for name in ("training_log.csv", "training_curve.png", "model.keras", "train_summary.json"):
        assert os.path.getsize(tmp_path / name) > 0

    # The shipped file is the classifier alone: one output, no optimizer, best epoch's weights.
    reloaded = keras.saving.load_model(result.model_path, safe_mode=True)
    assert getattr(reloaded, "optimizer", None) is None and len(reloaded.outputs) == 1
    assert reloaded.get_config()["blur_map_output"] is False
    best = build_model(
        "highpass-evidence-classifier", input_size=SIZE, blur_map_output=True, **TINY_CLASSIFIER
    )
    best.load_weights(str(tmp_path / "checkpoints" / "best.weights.h5"))
    images = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), best.predict(images, verbose=0)[0], atol=1e-5
    )
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["model_sha256"] == result.model_sha256
    assert result.model_sha256 == inference.file_sha256(result.model_path)
    assert summary["command"] == "pytest" and summary["commands"] == ["pytest"]
    assert summary["arguments"]["image_size"] == SIZE
    assert summary["arguments"]["blur_map_weight"] == 1.0
    assert summary["best_val"] == result.best_val and summary["epochs_run"] == 4


def test_source_groups_are_all_by_default_and_exclusions_match_name_prefixes(tiny_data):
    assert training.resolve_source_groups(tiny_data, None, None) is None
    assert training.resolve_source_groups(tiny_data, None, ["bsds"]) == ["urban100"]
    assert training.resolve_source_groups(tiny_data, ["bsds500_train"], ["bsds"]) == [
        "bsds500_train"
    ]  # an explicit list wins
    with pytest.raises(ValueError, match="leaves no source group"):
        training.resolve_source_groups(tiny_data, None, ["bsds", "urban"])


def test_identifier_trains_on_every_group_and_example_and_lowers_the_loss(tiny_data, tmp_path):
    config = training.TrainConfig(
        task="identifier",
        data_dir=tiny_data,
        arch="highpass-unet",
        out_dir=str(tmp_path),
        epochs=3,
        steps_per_epoch=30,
        batch_size=4,
        image_size=SIZE,
        learning_rate=3e-3,
        warmup_steps=10,
        model_kwargs=TINY_UNET,
        colour_jitter=1.0,  # photometric changes and turns keep the masks learnable
        turn_and_flip=True,
    )
    result = training.train(config, log=lambda line: None)

    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["arguments"]["source_groups"] is None  # the shipped recipe: all groups
    assert summary["arguments"]["positives_only"] is False  # and sharp examples (empty masks)
    assert summary["arguments"]["loss"] == "bce_dice"
    assert summary["arguments"]["colour_jitter"] == 1.0
    assert summary["arguments"]["turn_and_flip"] is True
    history = _history(tmp_path)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert "val_mae" in result.best_val
    assert summary["arguments"]["blur_map_weight"] == 0.0  # an identifier has no blur-map head


def _history(out_dir) -> list[dict]:
    with open(out_dir / "checkpoints" / "state.json", encoding="utf-8") as handle:
        return json.load(handle)["history"]


def test_killed_run_resumes_after_its_last_finished_epoch(tmp_path):
    images, labels = blur_samples.classifier_arrays(16, SIZE)
    train_data, val_data = _datasets(images, labels)
    keras.utils.set_random_seed(0)
    model = build_model("highpass-evidence-classifier", input_size=SIZE, **TINY_CLASSIFIER)
    # The registered custom loss must come back from the checkpoint too.
    training.compile_model(model, "classifier", "bce_dice", 3e-3)
    training.fit(
        model,
        train_data,
        val_data,
        str(tmp_path),
        task="classifier",
        epochs=1,
        learning_rate=3e-3,
        warmup_steps=2,
        log=lambda line: None,
    )
    # A new process would find exactly these two files.
    with open(tmp_path / "checkpoints" / "state.json", encoding="utf-8") as handle:
        state = json.load(handle)
    assert state["steps_per_epoch"] == 2  # learned from the first full pass
    resumed = keras.saving.load_model(str(tmp_path / "checkpoints" / "last.keras"), safe_mode=True)
    assert int(resumed.optimizer.iterations) == 2

    state = training.fit(
        resumed,
        train_data,
        val_data,
        str(tmp_path),
        task="classifier",
        epochs=3,
        learning_rate=3e-3,
        state=state,
        warmup_steps=2,
        log=lambda line: None,
    )

    assert [row["epoch"] for row in state["history"]] == [1, 2, 3]
    assert int(resumed.optimizer.iterations) == 6  # the optimizer state came back too
    # Nothing left to do: a further call trains no more.
    again = training.fit(
        resumed,
        train_data,
        val_data,
        str(tmp_path),
        task="classifier",
        epochs=3,
        learning_rate=3e-3,
        state=state,
        log=lambda line: None,
    )
    assert again["epochs_done"] == 3 and int(resumed.optimizer.iterations) == 6

    # The time budget counts earlier runs: a budget already spent trains no more either.
    state["elapsed_s"] = 100.0
    spent = training.fit(
        resumed,
        train_data,
        val_data,
        str(tmp_path),
        task="classifier",
        epochs=9,
        learning_rate=3e-3,
        state=state,
        time_budget_s=50.0,
        log=lambda line: None,
    )
    assert spent["stopped_because"] == "time_budget" and int(resumed.optimizer.iterations) == 6

    # A budget that runs out during a batch stops cleanly: Keras still validates and the
    # epoch is checkpointed.
    state["elapsed_s"] = 0.0
    cut = training.fit(
        resumed,
        train_data,
        val_data,
        str(tmp_path),
        task="classifier",
        epochs=9,
        learning_rate=3e-3,
        state=state,
        time_budget_s=1e-3,
        log=lambda line: None,
    )
    assert cut["stopped_because"] == "time_budget"
    assert cut["epochs_done"] == 4 and cut["history"][-1]["steps"] == 1
    assert "val_loss" in cut["history"][-1]


def _monitor_on_tiny_dense_model(out_dir, patience: int) -> training.TrainingMonitor:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    os.makedirs(out_dir / "checkpoints", exist_ok=True)
    monitor = training.TrainingMonitor(
        str(out_dir),
        training.new_state(),
        epochs=10,
        learning_rate=1e-3,
        min_learning_rate=1e-5,
        warmup_steps=0,
        steps_per_epoch=1,
        time_budget_s=None,
        patience=patience,
        plot_metric="auc",
        log=lambda line: None,
    )
    monitor.set_model(model)
    return monitor


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    monitor = _monitor_on_tiny_dense_model(tmp_path, patience=2)
    for epoch, val_loss in enumerate([0.9, 0.7, 0.8, 0.75]):
        monitor.on_epoch_begin(epoch)
        monitor.on_train_batch_end(0)
        monitor.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
        if monitor.model.stop_training:
            break

    assert monitor.state["stopped_because"] == "early_stopping"
    assert monitor.state["epochs_done"] == 4
    assert monitor.state["best_epoch"] == 2 and monitor.state["best_val_loss"] == 0.7
    assert os.path.exists(tmp_path / "checkpoints" / "best.weights.h5")


def test_long_epochs_print_progress_lines_between_epoch_lines(tmp_path):
    lines: list[str] = []
    monitor = _monitor_on_tiny_dense_model(tmp_path, patience=2)
    monitor.log = lines.append
    monitor.progress_interval_s = 1e-9  # a line after every batch
    monitor.on_epoch_begin(1)
    monitor.on_train_batch_end(0, {"loss": 0.25})
    monitor.on_train_batch_end(1)

    assert lines[0].split()[:4] == ["epoch", "2/10", "batch", "1/1"]
    assert "loss 0.2500" in lines[0] and "s/batch" in lines[0]
    assert "loss" not in lines[1] and "batch 2/1" in lines[1]  # no estimate past the end
    assert "epoch ends" not in lines[1]

    quiet = _monitor_on_tiny_dense_model(tmp_path, patience=2)
    quiet.log = lines.append
    quiet.progress_interval_s = 0.0
    quiet.on_epoch_begin(0)
    quiet.on_train_batch_end(0, {"loss": 0.25})
    assert len(lines) == 2


def test_an_epoch_without_batches_is_a_clear_error(tmp_path):
    monitor = _monitor_on_tiny_dense_model(tmp_path, patience=2)
    monitor.on_epoch_begin(0)
    with pytest.raises(ValueError, match="yielded no batch"):
        monitor.on_epoch_end(0, {"val_loss": 1.0})


def test_learning_rate_warms_up_then_follows_cosine_to_the_floor(tmp_path):
    monitor = training.TrainingMonitor(
        str(tmp_path),
        training.new_state(),
        epochs=10,
        learning_rate=1.0,
        min_learning_rate=0.01,
        warmup_steps=10,
        steps_per_epoch=11,
        time_budget_s=None,
        patience=3,
        plot_metric="auc",
    )
    assert monitor.learning_rate_at(0) == pytest.approx(0.1)
    assert monitor.learning_rate_at(9) == pytest.approx(1.0)
    # 110 planned steps, 10 of warm-up: halfway through the cosine at step 60.
    assert monitor.learning_rate_at(60) == pytest.approx(0.505)
    assert monitor.learning_rate_at(110) == pytest.approx(0.01)
    assert monitor.learning_rate_at(500) == pytest.approx(0.01)


def test_blur_map_targets_carry_the_reader_label_rule():
    masks = np.zeros((3, 2, 2, 1), dtype="float32")
    masks[1, 0, 0, 0] = 0.1  # 2.5 % of the view blurred: blurry
    masks[2, 0, 0, 0] = 0.04  # 1 %: sharp
    _, targets = training.label_and_blur_map(np.zeros((3, 8, 8, 3), "float32"), masks)
    np.testing.assert_array_equal(np.asarray(targets["p_blurry"]), [[0.0], [1.0], [0.0]])
    np.testing.assert_array_equal(np.asarray(targets["blur_map"]), masks)


def test_dice_loss_by_hand():
    truth = np.array([[[[1.0], [0.0]]]], dtype="float32")  # (1, 1, 2, 1)
    prediction = np.array([[[[0.5], [0.5]]]], dtype="float32")
    # overlap 0.5, total 1 + 1 = 2 -> 1 - (2 * 0.5 + 1) / (2 + 1) = 1/3
    assert float(training.dice_loss(truth, prediction)[0]) == pytest.approx(1 / 3)
    perfect = float(training.bce_dice_loss(truth, truth)[0])
    assert perfect == pytest.approx(0.0, abs=1e-4)


def test_task_and_architecture_must_agree(tmp_path):
    with pytest.raises(ValueError, match="is an identifier, not a classifier"):
        training.TrainConfig(
            task="classifier", data_dir=str(tmp_path), arch="highpass-unet",
            out_dir=str(tmp_path / "out"),
        )


def test_warm_start_copies_matching_layers_from_an_exported_classifier(tmp_path):
    # The exported classifier has no blur-map head; a training network with one gets every
    # other layer's weights, and predicts exactly like the source before any training step.
    source = build_model("highpass-evidence-classifier", input_size=SIZE, **TINY_CLASSIFIER)
    images = np.random.default_rng(2).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    source(images)
    path = str(tmp_path / "source.keras")
    source.save(path)
    target = build_model(
        "highpass-evidence-classifier", input_size=SIZE, blur_map_output=True, **TINY_CLASSIFIER
    )
    copied, total = training.copy_matching_weights(path, target)
    assert 0 < copied < total
    np.testing.assert_allclose(
        target.predict(images, verbose=0)[0], source.predict(images, verbose=0), atol=1e-5
    )
    other = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(2, 3, name="unrelated_conv")]
    )
    with pytest.raises(ValueError, match="no layer matches"):
        training.copy_matching_weights(path, other)


def test_warm_started_run_records_its_source_and_crop_scale(tiny_data, tmp_path):
    common = dict(
        task="identifier", data_dir=tiny_data, arch="highpass-unet", epochs=1,
        steps_per_epoch=2, batch_size=4, image_size=SIZE, model_kwargs=TINY_UNET,
    )
    first = training.train(training.TrainConfig(out_dir=str(tmp_path / "a"), **common), log=print)
    lines: list[str] = []
    result = training.train(
        training.TrainConfig(
            out_dir=str(tmp_path / "b"), init_from=first.model_path, max_crop_scale=1.5,
            **common,
        ),
        log=lines.append,
    )
    assert any("warm start" in line for line in lines)
    summary = json.loads((tmp_path / "b" / "train_summary.json").read_text())
    assert summary["arguments"]["init_from"] == first.model_path
    assert summary["arguments"]["max_crop_scale"] == 1.5
    assert result.epochs_run == 1
