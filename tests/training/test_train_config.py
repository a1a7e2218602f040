"""TrainConfig: per-architecture defaults, frozen, and every mistake caught before a write."""

from __future__ import annotations

import dataclasses
import os

import pytest
from click.testing import CliRunner

from sbdn_pipeline import architectures
from sbdn_pipeline.cli import models as model_cli
from sbdn_pipeline.training import train as training
from sbdn_pipeline.training.config import ARCH_DEFAULTS, TrainConfig


def _config(**overrides) -> TrainConfig:
    values = {"task": "classifier", "data_dir": "D", "arch": "highpass-evidence-classifier",
              "out_dir": "O", **overrides}
    return TrainConfig(**values)


@pytest.mark.parametrize("arch", sorted(ARCH_DEFAULTS))
def test_defaults_are_resolved_per_architecture(arch):
    config = _config(task=architectures.task_of(arch), arch=arch)

    defaults = ARCH_DEFAULTS[arch]
    assert (config.epochs, config.batch_size) == (defaults["epochs"], defaults["batch_size"])
    assert (config.learning_rate, config.loss) == (defaults["learning_rate"], defaults["loss"])
    assert config.image_size == architectures.default_input_size(arch)
    assert config.model_kwargs == {}
    # Only the evidence classifier has a blur-map output to weigh.
    assert config.blur_map_weight == (1.0 if arch == "highpass-evidence-classifier" else 0.0)


def test_given_values_win_over_the_architecture_defaults():
    config = _config(epochs=3, batch_size=8, image_size=64, learning_rate=0.01, loss="mse")
    assert (config.epochs, config.batch_size, config.image_size) == (3, 8, 64)
    assert (config.learning_rate, config.loss) == (0.01, "mse")


def test_config_is_frozen_and_keeps_its_own_model_kwargs():
    widths = {"stem_filters": 8}
    config = _config(model_kwargs=widths)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 1  # type: ignore[misc]
    widths["stem_filters"] = 16
    assert config.model_kwargs == {"stem_filters": 8}
    # replace() builds (and checks) a new config.
    assert dataclasses.replace(config, epochs=2).epochs == 2
    with pytest.raises(ValueError, match="epochs"):
        dataclasses.replace(config, epochs=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task": "segmenter"}, "task must be one of"),
        ({"arch": "vgg"}, "unknown architecture 'vgg'"),
        ({"arch": "highpass-unet"}, "is an identifier, not a classifier"),
        ({"loss": "hinge"}, "unknown loss"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"image_size": 16}, "image_size must be at least 32"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be at least 1"),
        ({"validation_steps": 0}, "validation_steps must be at least 1"),
        ({"time_budget_s": -1.0}, "time_budget_s must be at least 0"),
        ({"patience": 0}, "patience must be at least 1"),
        ({"warmup_steps": -1}, "warmup_steps must be at least 0"),
        ({"shuffle_buffer": 0}, "shuffle_buffer must be at least 1"),
        ({"blur_map_weight": -0.5}, "blur_map_weight must be at least 0"),
        ({"max_crop_scale": 0.5}, "max_crop_scale must be at least 1"),
        ({"letterbox_fraction": 1.0}, r"letterbox_fraction must be in \[0, 1\)"),
        ({"colour_jitter": 1.5}, r"colour_jitter must be in \[0, 1\]"),
    ],
)
def test_bad_values_are_rejected_on_construction(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def _run_folder_with_checkpoints(out_dir) -> dict[str, bytes]:
    """An earlier run's checkpoints, which a fresh run (resume=False) would delete."""
    checkpoints = out_dir / "checkpoints"
    checkpoints.mkdir(parents=True)
    files = {"state.json": b'{"epochs_done": 3}', "last.keras": b"not really a model"}
    for name, content in files.items():
        (checkpoints / name).write_bytes(content)
    return files


def _unchanged(out_dir, files: dict[str, bytes]) -> bool:
    checkpoints = out_dir / "checkpoints"
    return sorted(os.listdir(checkpoints)) == sorted(files) and all(
        (checkpoints / name).read_bytes() == content for name, content in files.items()
    )


def test_an_invalid_config_fails_before_the_old_checkpoints_are_touched(tmp_path):
    out_dir = tmp_path / "run"
    files = _run_folder_with_checkpoints(out_dir)
    with pytest.raises(ValueError, match="colour_jitter"):
        training.train(_config(data_dir=str(tmp_path), out_dir=str(out_dir), resume=False,
                               colour_jitter=2.0))
    assert _unchanged(out_dir, files)


def test_a_missing_data_set_fails_before_the_old_checkpoints_are_deleted(tmp_path):
    out_dir = tmp_path / "run"
    files = _run_folder_with_checkpoints(out_dir)
    config = _config(data_dir=str(tmp_path / "no-such-data"), out_dir=str(out_dir), resume=False)
    with pytest.raises(FileNotFoundError, match="no TFRecord shards"):
        training.train(config, log=lambda line: None)
    assert _unchanged(out_dir, files)


def test_recorded_arguments_hold_the_resolved_values_and_the_groups_used():
    config = _config(arch="resnet50", exclude_source_groups=["bsds"], command="sbdn train")
    arguments = config.recorded_arguments(["urban100"])
    assert arguments["source_groups"] == ["urban100"]
    assert arguments["epochs"] == ARCH_DEFAULTS["resnet50"]["epochs"]
    assert arguments["blur_map_weight"] == 0.0 and arguments["model_kwargs"] == {}
    assert not {"exclude_source_groups", "resume", "command"} & set(arguments)


def test_the_cli_reports_a_config_error_in_one_line():
    result = CliRunner().invoke(
        model_cli.train_command,
        ["classifier", "--data", "D", "--arch", "highpass-unet", "--out", "O"],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: architecture 'highpass-unet' is an identifier, not a classifier"
    ]
