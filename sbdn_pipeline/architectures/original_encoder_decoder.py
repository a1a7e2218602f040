"""Plain convolutional encoder-decoder blur identifier, faithful to the original research."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from sbdn_pipeline.architectures.base_model import BlurModel


@keras.saving.register_keras_serializable(package="sbdn")
class OriginalEncoderDecoder(BlurModel):
    """Five conv + max-pool stages down, five transposed convolutions back up, sigmoid mask.

    No skip connections and a full-resolution output, as in the original; trained with MSE.

    Args:
        input_size: side S of the square RGB input; must be divisible by 2**len(encoder_filters).
        encoder_filters: channels of the 3x3 convolution of each downsampling stage.
        decoder_filters: channels of each stride-2 transposed convolution (same count as the
            encoder stages, so the mask comes back at the input resolution).
    """

    task = "identifier"
    default_input_size = 224

    def __init__(
        self,
        input_size: int = 224,
        encoder_filters: Sequence[int] = (64, 128, 256, 512, 512),
        decoder_filters: Sequence[int] = (512, 256, 128, 64, 32),
        **kwargs: Any,
    ) -> None:
        encoder_filters = tuple(int(f) for f in encoder_filters)
        decoder_filters = tuple(int(f) for f in decoder_filters)
        if len(encoder_filters) != len(decoder_filters):
            raise ValueError(
                "encoder_filters and decoder_filters need the same number of stages, got "
                f"{len(encoder_filters)} and {len(decoder_filters)}"
            )
        stride = 2 ** len(encoder_filters)
        if input_size % stride:
            raise ValueError(f"input_size {input_size} is not divisible by {stride}")

        # === Layers ===
        normalise = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")
        encoder = []
        for index, filters in enumerate(encoder_filters):
            encoder.append(
                layers.Conv2D(
                    filters, 3, padding="same", activation="relu", name=f"down{index}_conv"
                )
            )
            encoder.append(layers.MaxPooling2D(2, name=f"down{index}_pool"))
        decoder = [
            layers.Conv2DTranspose(
                filters, 3, strides=2, padding="same", activation="relu", name=f"up{index}_deconv"
            )
            for index, filters in enumerate(decoder_filters)
        ]
        head = layers.Conv2D(1, 1, activation="sigmoid", name="p_blurred")

        # === Functional Model ===
        images = keras.Input(shape=(input_size, input_size, 3), name="image")
        x = normalise(images)
        for layer in encoder + decoder:
            x = layer(x)
        outputs = head(x)
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        # === Config ===
        self.input_size = input_size
        self.encoder_filters = encoder_filters
        self.decoder_filters = decoder_filters

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "input_size": self.input_size,
                "encoder_filters": list(self.encoder_filters),
                "decoder_filters": list(self.decoder_filters),
            }
        )
        return config
