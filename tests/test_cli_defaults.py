"""Drift test: every click option default equals the default of the field it fills.

Options are matched to dataclass fields (or keyword parameters) by destination name; an
option the command turns into something else (e.g. ``--splits`` text) simply has no match.
"""

from __future__ import annotations

import dataclasses
import inspect

import click
import pytest

from sbdn_pipeline.cli import cli

# Options whose CLI default deliberately differs: None means "decided at run time".
DECIDED_AT_RUN_TIME = {
    ("make-dataset", "variants_per_image"),  # per preset: 8, or 2 for the original recipe
}


def _dataclass_defaults(cls: type) -> dict[str, object]:
    defaults = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def _signature_defaults(function: object) -> dict[str, object]:
    return {name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def _as_field_value(option_default: object, field_default: object) -> object:
    """Comma-separated option text for a tuple field compares as that tuple."""
    if isinstance(field_default, tuple) and isinstance(option_default, str):
        return tuple(part for part in option_default.split(",") if part)
    return option_default


def _matched(command_name: str, defaults: dict[str, object]) -> dict[str, tuple[object, object]]:
    command = cli.commands[command_name]
    context = click.Context(command)
    matched = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name not in defaults:
            continue
        if (command_name, param.name) in DECIDED_AT_RUN_TIME:
            continue
        field_default = defaults[param.name]
        # get_default: what the command receives (a flag without default= gets False).
        option_default = param.get_default(context, call=True)
        matched[param.name] = (_as_field_value(option_default, field_default), field_default)
    return matched


def _targets() -> list[tuple[str, dict[str, object]]]:
    from beam_jobs.make_dataset import MakeDatasetOptions
    from sbdn_pipeline.options import DetectOptions
    from sbdn_pipeline.training import evaluate
    from sbdn_pipeline.training.config import TrainConfig

    return [
        ("detect", _dataclass_defaults(DetectOptions)),
        ("make-dataset", _dataclass_defaults(MakeDatasetOptions)),
        ("train", _dataclass_defaults(TrainConfig)),
        ("evaluate", {**_signature_defaults(evaluate.evaluate),
                      **_dataclass_defaults(evaluate.TileSettings)}),
    ]


@pytest.mark.parametrize("index", range(4), ids=["detect", "make-dataset", "train", "evaluate"])
def test_option_defaults_equal_field_defaults(index: int) -> None:
    command_name, defaults = _targets()[index]
    matched = _matched(command_name, defaults)
    assert matched, f"no option of {command_name} matched a field: the mapping is broken"
    drift = {name: pair for name, pair in matched.items() if pair[0] != pair[1]}
    assert not drift, f"{command_name}: option default != field default: {drift}"


def test_detect_matches_the_thresholds_and_tiles() -> None:
    from sbdn_pipeline.options import DetectOptions

    matched = _matched("detect", _dataclass_defaults(DetectOptions))
    assert {"blur_threshold", "mask_threshold", "batch_size", "max_pixels",
            "max_error_fraction", "classifier_tiles", "tile_pooling",
            "identifier_tiles"} <= set(matched)
