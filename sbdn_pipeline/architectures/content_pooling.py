"""Global mean and max pooling restricted to positions that show image content."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sbdn")
class ContentPooling(keras.layers.Layer):
    """Mean and max of a feature map over the cells that show image content, concatenated.

    Letterboxing pads the model input with exact black (0, 0, 0). A flat black band has no
    detail at all, which is exactly what blur looks like, so evidence read from the padding
    would make every letterboxed sharp photo look partly blurred. A cell of the feature map is
    counted when more than half of the input pixels it covers are not exact black. Cells that
    are exact black inside a photo (clipped shadows) carry no blur evidence either, so leaving
    them out costs nothing. An all-black input pools to zeros.

    Call with ``[features, images]``: features (B, h, w, C), non-negative (post-ReLU);
    images (B, S, S, 3), the model input. Returns (B, 2 C): [masked mean, masked max].
    """

    def call(self, inputs: list[Any]) -> Any:
        features, images = inputs
        content = ops.cast(ops.max(images, axis=-1, keepdims=True) > 0.0, features.dtype)
        feature_shape = ops.shape(features)
        # Fraction of content pixels under each feature cell.
        coverage = ops.image.resize(
            content, (feature_shape[1], feature_shape[2]), interpolation="area"
        )
        valid = ops.cast(coverage > 0.5, features.dtype)
        count = ops.sum(valid, axis=(1, 2))
        mean = ops.sum(features * valid, axis=(1, 2)) / ops.maximum(count, 1.0)
        # Features are >= 0, so zeroing the padding cells removes them from the max.
        maximum = ops.max(features * valid, axis=(1, 2))
        return ops.concatenate([mean, maximum], axis=-1)

    def compute_output_shape(self, input_shapes: list[tuple]) -> tuple:
        feature_shape = input_shapes[0]
        return (feature_shape[0], 2 * feature_shape[-1])
