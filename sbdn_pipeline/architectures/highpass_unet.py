"""Small U-Net blur identifier: high-pass stem, separable encoder, skips, mask at 1/4 size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from sbdn_pipeline.architectures.base_model import BlurModel
from sbdn_pipeline.architectures.blocks import (
    conv_bn_relu,
    global_context,
    separable_block,
    upsample_merge,
)
from sbdn_pipeline.architectures.high_pass_filters import HighPassFilters


@keras.saving.register_keras_serializable(package="sbdn")
class HighPassUNet(BlurModel):
    """Fully convolutional U-Net that returns P(blurred) per mask pixel.

    Design, and why:
      * Fixed Laplacian/Sobel filters at full resolution (:class:`HighPassFilters`), then a
        2x2 stride-2 patchify convolution: fine detail is measured before downsampling.
      * Depthwise-separable encoder down to 1/32 with a global-context gate at the bottom, so
        each mask pixel is decided with a receptive field of a few hundred pixels and a summary
        of the whole image (a smooth wall vs. a blurred one).
      * Skip connections at every level the decoder reaches, so region borders stay sharp.
      * The decoder stops at ``output_stride`` (1/4 by default): masks at 1/4 resolution are
        plenty for area and region statistics and cost a fraction of a full-size decoder.

    Args:
        input_size: side S of the square input; None builds a model that accepts any size
            divisible by 32. S must be divisible by 32.
        output_stride: input pixels per mask pixel: 1, 2 or 4.
        encoder_filters: channels at 1/2, 1/4, 1/8, 1/16 and 1/32 resolution (the decoder uses
            the same widths at the levels it returns to).
        encoder_blocks: separable blocks per encoder level (the 1/2 level is the patchify stem
            plus this many blocks).
        high_pass_gain: gain of the fixed high-pass responses.
        batch_norm_momentum: momentum of the batch-norm moving statistics. 0.9, not Keras'
            0.99: a CPU training run is a few thousand steps with a fast-changing network,
            and statistics that lag behind the weights ruin validation and inference.
    """

    task = "identifier"
    default_input_size = 320

    def __init__(
        self,
        input_size: int | None = 320,
        output_stride: int = 4,
        encoder_filters: Sequence[int] = (16, 32, 48, 80, 128),
        encoder_blocks: Sequence[int] = (0, 2, 2, 3, 2),
        high_pass_gain: float = 8.0,
        batch_norm_momentum: float = 0.9,
        **kwargs: Any,
    ) -> None:
        encoder_filters = tuple(int(f) for f in encoder_filters)
        encoder_blocks = tuple(int(b) for b in encoder_blocks)
        if len(encoder_filters) != 5 or len(encoder_blocks) != 5:
            raise ValueError(
                "encoder_filters and encoder_blocks need 5 entries (1/2 ... 1/32), got "
                f"{encoder_filters} and {encoder_blocks}"
            )
        if output_stride not in (1, 2, 4):
            raise ValueError(f"output_stride must be 1, 2 or 4, got {output_stride}")
        if input_size is not None and (input_size % 32 or input_size < 32):
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")

        # === Layers ===
        high_pass = HighPassFilters(gain=high_pass_gain, name="high_pass")
        head = layers.Conv2D(1, 1, activation="sigmoid", name="p_blurred")

        # === Functional Model ===
        images = keras.Input(shape=(input_size, input_size, 3), name="image")
        filtered = high_pass(images)
        momentum = batch_norm_momentum
        x = conv_bn_relu(filtered, encoder_filters[0], 2, strides=2, name="stem", momentum=momentum)
        features = {0: filtered}  # level L has resolution S / 2**L
        for level in range(1, 6):
            filters = encoder_filters[level - 1]
            for block in range(encoder_blocks[level - 1]):
                x = separable_block(
                    x,
                    filters,
                    strides=2 if level > 1 and block == 0 else 1,
                    dilation_rate=2 if level == 5 and block > 0 else 1,
                    name=f"enc{level}_block{block}",
                    momentum=momentum,
                )
            features[level] = x
        x = global_context(x, name="context")
        for level in range(4, int(math.log2(output_stride)) - 1, -1):
            filters = encoder_filters[level - 1] if level > 0 else max(8, encoder_filters[0] // 2)
            x = upsample_merge(x, features[level], filters, name=f"dec{level}", momentum=momentum)
        outputs = head(x)
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        # === Config ===
        self.input_size = input_size
        self.output_stride = output_stride
        self.encoder_filters = encoder_filters
        self.encoder_blocks = encoder_blocks
        self.high_pass_gain = high_pass_gain
        self.batch_norm_momentum = batch_norm_momentum

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "input_size": self.input_size,
                "output_stride": self.output_stride,
                "encoder_filters": list(self.encoder_filters),
                "encoder_blocks": list(self.encoder_blocks),
                "high_pass_gain": self.high_pass_gain,
                "batch_norm_momentum": self.batch_norm_momentum,
            }
        )
        return config
