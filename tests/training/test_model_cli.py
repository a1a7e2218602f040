"""`sbdn train` and `sbdn evaluate` command lines (click commands called directly)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from sbdn_pipeline.cli import models as model_cli
from sbdn_pipeline.training import train as training
from tests.training import blur_samples


@pytest.fixture
def recorded_train(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Replace the training job by a recorder: these tests are about the command line only."""
    calls: dict = {}

    def fake_train(config, log=print):
        calls.update(dataclasses.asdict(config))
        out_dir = config.out_dir
        log("epoch 1/1  loss 0.5000")
        return training.TrainResult(
            out_dir=out_dir,
            model_path=f"{out_dir}/model.keras",
            model_sha256="0" * 64,
            epochs_run=1,
            best_epoch=1,
            best_val={"val_loss": 0.5},
            wall_time_s=90.0,
            stopped_because="completed_epochs",
            summary_path=f"{out_dir}/train_summary.json",
        )

    monkeypatch.setattr(training, "train", fake_train)
    return calls


def test_train_defaults_to_the_efficient_network_with_a_one_hour_budget(recorded_train):
    result = CliRunner().invoke(
        model_cli.train_command, ["identifier", "--data", "D", "--out", "O"]
    )

    assert result.exit_code == 0, result.output
    assert recorded_train["arch"] == "highpass-unet"
    assert recorded_train["time_budget_s"] == 3600.0
    assert recorded_train["exclude_source_groups"] is None  # every source group
    assert recorded_train["positives_only"] is False and recorded_train["resume"] is True
    assert "epoch 1/1" in result.output and "O/model.keras" in result.output


def test_train_passes_every_option_and_records_the_command(recorded_train):
    args = [
        "classifier",
        "--data",
        "D",
        "--arch",
        "resnet50",
        "--out",
        "O",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--image-size",
        "96",
        "--learning-rate",
        "0.01",
        "--seed",
        "7",
        "--time-budget-minutes",
        "0",
        "--steps-per-epoch",
        "5",
        "--source-groups",
        "a, b",
        "--exclude-source-groups",
        "",
        "--all-examples",
        "--loss",
        "bce",
        "--restart",
    ]
    result = CliRunner().invoke(model_cli.train_command, args)

    assert result.exit_code == 0, result.output
    call = recorded_train
    assert (call["task"], call["arch"], call["epochs"], call["batch_size"]) == (
        "classifier",
        "resnet50",
        3,
        8,
    )
    assert (call["image_size"], call["learning_rate"], call["seed"]) == (96, 0.01, 7)
    assert call["time_budget_s"] is None and call["steps_per_epoch"] == 5
    assert call["source_groups"] == ["a", "b"] and call["exclude_source_groups"] == []
    assert call["positives_only"] is False and call["resume"] is False
    assert call["command"] == (
        "train classifier --data D --arch resnet50 --out O --epochs 3 --batch-size 8 "
        "--image-size 96 --learning-rate 0.01 --seed 7 --time-budget-minutes 0.0 "
        "--steps-per-epoch 5 --source-groups 'a, b' --exclude-source-groups '' "
        "--all-examples --loss bce --restart"
    )


def test_train_rejects_an_unknown_architecture_before_any_work(recorded_train):
    result = CliRunner().invoke(
        model_cli.train_command, ["classifier", "--data", "D", "--arch", "vgg", "--out", "O"]
    )
    assert result.exit_code == 1
    assert "unknown architecture 'vgg'" in result.output and not recorded_train


def test_evaluate_writes_metrics_for_a_data_set(tmp_path):
    data = tmp_path / "data"
    blur_samples.write_dataset(str(data), {"val": 4, "test": 6})
    models = blur_samples.save_constant_models(str(tmp_path), 64)

    result = CliRunner().invoke(
        model_cli.evaluate_command,
        [
            "--data",
            str(data),
            "--classifier",
            models["classifier"],
            "--out",
            str(tmp_path / "eval"),
            "--no-plots",
        ],
    )

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["data"]["n"] == 6 and "classifier" in report and "laplacian-variance" in report
    assert "accuracy" in result.output


def test_evaluate_reports_a_missing_model_as_a_clean_error(tmp_path):
    data = tmp_path / "data"
    blur_samples.write_dataset(str(data), {"val": 2, "test": 2})
    result = CliRunner().invoke(
        model_cli.evaluate_command,
        [
            "--data",
            str(data),
            "--classifier",
            str(tmp_path / "missing.keras"),
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 1 and "model file not found" in result.output


def test_evaluate_help_names_every_baseline_and_the_new_options():
    from sbdn_pipeline.training import baselines

    result = CliRunner().invoke(model_cli.evaluate_command, ["--help"])
    assert result.exit_code == 0
    for name in baselines.BASELINES:
        assert name in result.output
    for option in ("--cross-recipe", "--masks", "--calibration-data", "--no-baselines"):
        assert option in result.output


def test_evaluate_cross_recipe_from_the_command_line(tmp_path):
    blur_samples.write_dataset(str(tmp_path / "own"), {"val": 4, "test": 4})
    blur_samples.write_dataset(str(tmp_path / "x"), {"val": 2, "test": 4}, seed=5)
    result = CliRunner().invoke(
        model_cli.evaluate_command,
        [
            "--data", str(tmp_path / "own"), "--cross-recipe", str(tmp_path / "x"),
            "--out", str(tmp_path / "eval"), "--no-plots",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(report["datasets"]) == {"own", "cross-recipe"}
    assert "blur-effect" in report["datasets"]["cross-recipe"]
    assert "cross-recipe: test split" in result.output


def test_evaluate_reports_a_stray_mask_as_a_clean_error(tmp_path):
    from PIL import Image

    import numpy as np

    (tmp_path / "photos" / "sharp").mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), "uint8")).save(tmp_path / "photos" / "sharp" / "a.png")
    Image.fromarray(np.zeros((32, 32), "uint8")).save(tmp_path / "masks" / "b.png")
    result = CliRunner().invoke(
        model_cli.evaluate_command,
        ["--data", str(tmp_path / "photos"), "--masks", str(tmp_path / "masks"),
         "--out", str(tmp_path / "eval")],
    )
    assert result.exit_code == 1
    assert "b.png matches no image" in result.output and "Traceback" not in result.output
