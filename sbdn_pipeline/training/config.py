"""What one training run is asked to do: :class:`TrainConfig`, resolved and checked up front.

Building a config fills the per-architecture defaults (:data:`ARCH_DEFAULTS`) and rejects
every bad value, without touching the disk, so a mistake fails before a run deletes or
overwrites anything in its ``out_dir``. What needs the data set itself (shards, the manifest's
source groups) is checked first thing by ``train()``, still before its first write.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any

from sbdn_pipeline import architectures
from sbdn_pipeline.training.defaults import (
    CLASSIFIER,
    DEFAULT_BLUR_MAP_WEIGHT,
    DEFAULT_COLOUR_JITTER,
    DEFAULT_LETTERBOX_FRACTION,
    DEFAULT_PATIENCE,
    DEFAULT_TURN_AND_FLIP,
    LOSSES,
    TASKS,
)

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
DEFAULT_WARMUP_STEPS = 100
DEFAULT_SHUFFLE_BUFFER = 256

# Smallest allowed value per numeric field (None allowed where the field is optional).
_AT_LEAST = {"epochs": 1, "batch_size": 1, "image_size": 32, "patience": 1, "warmup_steps": 0,
             "shuffle_buffer": 1, "blur_map_weight": 0.0}
_AT_LEAST_OR_NONE = {"steps_per_epoch": 1, "validation_steps": 1, "time_budget_s": 0.0,
                     "max_crop_scale": 1.0}
# Fields that steer the run but are not part of the recorded "arguments" of its summary.
_NOT_RECORDED = ("exclude_source_groups", "resume", "command")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run of one network on one task; resolved and validated on construction.

    Attributes:
        task: "classifier" or "identifier"; must match the architecture.
        data_dir: data set folder (``train/``, ``val/``, ``manifest.json``).
        arch: architecture name (see ``sbdn_pipeline.architectures.ARCHITECTURES``).
        out_dir: run folder (created; reused when resuming).
        epochs: planned epochs (None: per architecture, :data:`ARCH_DEFAULTS`).
        batch_size: examples per batch (None: per architecture).
        image_size: square input side S (None: the architecture's shipping size).
        learning_rate: peak Adam learning rate (None: per architecture).
        seed: seeds Python, numpy, TensorFlow and the data order.
        steps_per_epoch: batches per epoch (the training data is repeated); None for one pass.
        validation_steps: validation batches per epoch; None for the whole split.
        time_budget_s: stop cleanly after this many training seconds (summed over resumes);
            None (or 0) for no budget.
        source_groups: train only on these source groups.
        exclude_source_groups: leave these groups (or group-name prefixes) out; default none.
        positives_only: train only on blurred examples; default False (both tasks).
        loss: "bce", "bce_dice" or "mse" (None: per architecture).
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
        model_kwargs: extra architecture arguments (e.g. narrower widths for tests); a copy
            is kept.
        blur_map_weight: classifiers that support it (``blur_map_output``) also learn a coarse
            blur map from the masks, with this loss weight; 0 trains on labels alone. Set to
            0 for architectures without a blur-map output.
        max_crop_scale: training crops are at most ``image_size * max_crop_scale`` pixels on a
            side before resizing to ``image_size``, so the network sees pixels within that
            factor of their stored scale (as tiled native-resolution inference shows them);
            None: up to the image's short side.
        init_from: a ``.keras`` model whose weights start a new run (warm start): every layer
            whose name and weight shapes match is copied; the rest starts fresh.
        resume: continue the run in ``out_dir`` if it has checkpoints; False starts over.
        command: the command line recorded in the summary.

    Raises:
        ValueError: unknown task, architecture or loss, a task the architecture does not
            do, or a number out of range.
    """

    task: str
    data_dir: str
    arch: str
    out_dir: str
    epochs: int | None = None
    batch_size: int | None = None
    image_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    time_budget_s: float | None = None
    # Both tasks train on every source group and on sharp and blurred examples alike by
    # default. Measured (models/README.md): an identifier trained on blurred non-BSDS photos
    # only marked most of each BSDS test photo blurred (mask IoU 0.644 vs 0.708 with
    # everything): it never saw natural depth of field or a frame with nothing blurred in it.
    source_groups: Sequence[str] | None = None
    exclude_source_groups: Sequence[str] | None = None
    positives_only: bool = False
    loss: str | None = None
    patience: int = DEFAULT_PATIENCE
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    cache: bool = False
    letterbox_fraction: float = DEFAULT_LETTERBOX_FRACTION
    colour_jitter: float = DEFAULT_COLOUR_JITTER
    turn_and_flip: bool = DEFAULT_TURN_AND_FLIP
    model_kwargs: dict[str, Any] | None = None
    blur_map_weight: float = DEFAULT_BLUR_MAP_WEIGHT
    max_crop_scale: float | None = None
    init_from: str | None = None
    resume: bool = True
    command: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        arch_task = architectures.task_of(self.arch)  # an unknown name raises here
        if arch_task != self.task:
            raise ValueError(f"architecture {self.arch!r} is an {arch_task}, not a {self.task}")
        self._fill_arch_defaults()
        self._check_values()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # frozen: only construction fills in fields

    def _fill_arch_defaults(self) -> None:
        defaults = ARCH_DEFAULTS.get(self.arch, {})
        fallback_loss = "bce" if self.task == CLASSIFIER else "bce_dice"
        resolved = {
            "epochs": (int, defaults.get("epochs", 40)),
            "batch_size": (int, defaults.get("batch_size", 16)),
            "image_size": (int, architectures.default_input_size(self.arch)),
            "learning_rate": (float, defaults.get("learning_rate", 1e-3)),
            "loss": (str, defaults.get("loss", fallback_loss)),
        }
        for name, (kind, default) in resolved.items():
            value = getattr(self, name)
            self._set(name, kind(default if value is None else value))
        self._set("model_kwargs", dict(self.model_kwargs or {}))
        if not supports_blur_map(self.arch):
            self._set("blur_map_weight", 0.0)  # nothing to weigh: record it as unused

    def _check_values(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.letterbox_fraction < 1.0:
            raise ValueError(
                f"letterbox_fraction must be in [0, 1), got {self.letterbox_fraction}"
            )
        if not 0.0 <= self.colour_jitter <= 1.0:
            raise ValueError(f"colour_jitter must be in [0, 1], got {self.colour_jitter}")
        for name, minimum in {**_AT_LEAST, **_AT_LEAST_OR_NONE}.items():
            value = getattr(self, name)
            if value is None and name in _AT_LEAST_OR_NONE:
                continue
            if value is None or not value >= minimum:
                raise ValueError(f"{name} must be at least {minimum}, got {value!r}")

    def recorded_arguments(self, source_groups: list[str] | None) -> dict[str, Any]:
        """The "arguments" of ``train_summary.json``, with the source groups actually used."""
        arguments = dataclasses.asdict(self)
        for name in _NOT_RECORDED:
            del arguments[name]
        arguments["source_groups"] = source_groups
        return arguments


def supports_blur_map(arch: str) -> bool:
    """True if the architecture can be built with a training-only blur-map output."""
    return "blur_map_output" in inspect.signature(architectures.architecture_class(arch)).parameters
