"""Compact blur classifier: high-pass stem, separable body, mean + max pooled blur evidence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from sbdn_pipeline.architectures.base_model import BlurModel
from sbdn_pipeline.architectures.blocks import conv_bn_relu, global_context, separable_block
from sbdn_pipeline.architectures.content_pooling import ContentPooling
from sbdn_pipeline.architectures.high_pass_filters import HighPassFilters


@keras.saving.register_keras_serializable(package="sbdn")
class HighPassEvidenceClassifier(BlurModel):
    """Fully convolutional blur classifier designed to see fine detail cheaply.

    Design, and why:
      * Input at 384 px, not 224: blur is a loss of the finest frequencies and disappears when a
        large photo is shrunk too much, so the net must look at as many pixels as it can afford.
      * Fixed Laplacian/Sobel filters at full resolution (:class:`HighPassFilters`) followed by
        a 4x4 stride-4 "patchify" convolution: the finest frequencies are measured before any
        downsampling, and everything after runs on a 16x smaller grid.
      * Depthwise-separable stages down to 1/32 with a global-context gate at the end: a
        receptive field of a few hundred pixels plus an image-wide summary, because telling a
        smooth wall from a blurred one needs context.
      * Per-position "blur evidence" features pooled with both the mean and the max, so a
        blurred region covering a small part of the frame is not averaged away; pooling skips
        letterbox padding (:class:`ContentPooling`), which would otherwise look like blur.

    Args:
        input_size: side S of the square RGB input (float32 in [0, 255], letterboxed).
        stem_filters: channels of the stride-4 patchify convolution.
        stage_filters: channels of the stages at 1/4, 1/8, 1/16 and 1/32 resolution.
        stage_blocks: separable blocks per stage (the first block of stages 2+ has stride 2).
        evidence_filters: channels of the per-position evidence features that get pooled.
        dropout: dropout rate before the sigmoid unit.
        high_pass_gain: gain of the fixed high-pass responses.
        batch_norm_momentum: momentum of the batch-norm moving statistics. 0.9, not Keras'
            0.99: a CPU training run is a few thousand steps with a fast-changing network,
            and statistics that lag behind the weights ruin validation and inference.
        blur_map_output: training only: also output a blur map (B, h, w, 1), one sigmoid per
            evidence cell (h = w = S / 32 with four stages), so the evidence can be taught
            where the blur is (deep supervision from the synthetic masks: far more signal
            than one label per image). Shipped models are exported without it.
    """

    task = "classifier"
    default_input_size = 384

    def __init__(
        self,
        input_size: int = 384,
        stem_filters: int = 32,
        stage_filters: Sequence[int] = (48, 64, 96, 128),
        stage_blocks: Sequence[int] = (1, 2, 3, 3),
        evidence_filters: int = 160,
        dropout: float = 0.1,
        high_pass_gain: float = 8.0,
        batch_norm_momentum: float = 0.9,
        blur_map_output: bool = False,
        **kwargs: Any,
    ) -> None:
        stage_filters = tuple(int(f) for f in stage_filters)
        stage_blocks = tuple(int(b) for b in stage_blocks)
        _check_stages(input_size, stage_filters, stage_blocks)

        # === Layers ===
        high_pass = HighPassFilters(gain=high_pass_gain, name="high_pass")
        pool = ContentPooling(name="evidence_mean_max")
        drop = layers.Dropout(dropout, name="dropout")
        head = layers.Dense(1, activation="sigmoid", name="p_blurry")
        map_head = layers.Conv2D(1, 1, activation="sigmoid", name="blur_map")

        # === Functional Model ===
        images = keras.Input(shape=(input_size, input_size, 3), name="image")
        momentum = batch_norm_momentum
        x = conv_bn_relu(
            high_pass(images), stem_filters, 4, strides=4, name="stem", momentum=momentum
        )
        x = _separable_stages(x, stage_filters, stage_blocks, momentum)
        x = global_context(x, name="context")
        evidence = conv_bn_relu(x, evidence_filters, 1, name="evidence", momentum=momentum)
        outputs = head(drop(pool([evidence, images])))
        if blur_map_output:
            outputs = [outputs, map_head(evidence)]
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        # === Config ===
        self.input_size = input_size
        self.stem_filters = stem_filters
        self.stage_filters = stage_filters
        self.stage_blocks = stage_blocks
        self.evidence_filters = evidence_filters
        self.dropout = dropout
        self.high_pass_gain = high_pass_gain
        self.batch_norm_momentum = batch_norm_momentum
        self.blur_map_output = blur_map_output

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "input_size": self.input_size,
                "stem_filters": self.stem_filters,
                "stage_filters": list(self.stage_filters),
                "stage_blocks": list(self.stage_blocks),
                "evidence_filters": self.evidence_filters,
                "dropout": self.dropout,
                "high_pass_gain": self.high_pass_gain,
                "batch_norm_momentum": self.batch_norm_momentum,
                "blur_map_output": self.blur_map_output,
            }
        )
        return config


def _check_stages(
    input_size: int, stage_filters: tuple[int, ...], stage_blocks: tuple[int, ...]
) -> None:
    """Raise ValueError unless the stages are well formed and the input survives their strides."""
    if len(stage_filters) != len(stage_blocks) or not stage_filters:
        raise ValueError(
            "stage_filters and stage_blocks must be non-empty and of equal length, got "
            f"{stage_filters} and {stage_blocks}"
        )
    if input_size < 4 * 2 ** (len(stage_filters) - 1):
        raise ValueError(
            f"input_size {input_size} is too small for {len(stage_filters)} stages"
        )


def _separable_stages(
    x: keras.KerasTensor,
    stage_filters: tuple[int, ...],
    stage_blocks: tuple[int, ...],
    momentum: float,
) -> keras.KerasTensor:
    """The separable body, from 1/4 of the input resolution down to 1/32 with four stages.

    Stage s has ``stage_blocks[s]`` blocks named ``stage{s}_block{b}`` (the names are the
    shipped models' weight names); the first block of every stage after the first has stride 2.
    """
    for stage, (filters, blocks) in enumerate(zip(stage_filters, stage_blocks)):
        for block in range(blocks):
            last_stage = stage == len(stage_filters) - 1
            x = separable_block(
                x,
                filters,
                strides=2 if stage > 0 and block == 0 else 1,
                # Dilating the deepest blocks widens the context at no cost.
                dilation_rate=2 if last_stage and block > 0 else 1,
                name=f"stage{stage}_block{block}",
                momentum=momentum,
            )
    return x
