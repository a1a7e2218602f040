"""ResNet-50 blur classifier, faithful to the original research (trained from scratch, 224 px)."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from sbdn_pipeline.architectures.base_model import BlurModel


@keras.saving.register_keras_serializable(package="sbdn")
class ResNet50Classifier(BlurModel):
    """ResNet-50 (random init) with global average pooling and a 1-unit sigmoid head.

    Kept for comparison with the original research and for users who want it; it sees the
    image at 224 px, where subtle blur of a large photo has mostly been scaled away.

    Args:
        input_size: side S of the square RGB input (float32 in [0, 255]).
        dropout: dropout rate before the sigmoid unit.
        batch_norm_momentum: momentum of every batch-norm layer's moving statistics. 0.9
            rather than Keras' 0.99, as for our own networks: within an hour on a CPU
            ResNet-50 takes about a thousand steps, too few for 0.99 statistics to catch up
            with the weights, which would handicap it in the same-budget comparison.
    """

    task = "classifier"
    default_input_size = 224

    def __init__(
        self,
        input_size: int = 224,
        dropout: float = 0.0,
        batch_norm_momentum: float = 0.9,
        **kwargs: Any,
    ) -> None:
        # === Layers ===
        backbone = keras.applications.ResNet50(
            include_top=False,
            weights=None,
            input_shape=(input_size, input_size, 3),
            pooling="avg",
        )
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = batch_norm_momentum
        normalise = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")
        drop = layers.Dropout(dropout, name="dropout")
        head = layers.Dense(1, activation="sigmoid", name="p_blurry")

        # === Functional Model ===
        images = keras.Input(shape=(input_size, input_size, 3), name="image")
        outputs = head(drop(backbone(normalise(images))))
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        # === Config ===
        self.input_size = input_size
        self.dropout = dropout
        self.batch_norm_momentum = batch_norm_momentum

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "input_size": self.input_size,
                "dropout": self.dropout,
                "batch_norm_momentum": self.batch_norm_momentum,
            }
        )
        return config
