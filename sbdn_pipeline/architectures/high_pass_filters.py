"""Fixed high-pass filters on the luminance: the cheapest way to make blur visible to a net."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

# ITU-R BT.601 luma weights.
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype="float32")
# 3x3 Laplacian and Sobel derivatives (Sobel scaled so a unit step gives 1).
_LAPLACIAN = np.asarray([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype="float32")
_SOBEL_X = np.asarray([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype="float32") / 4


def _stem_kernel(gain: float) -> np.ndarray:
    """Kernel (3, 3, 3, 9) mapping RGB to [r, g, b, +hp x 3, -hp x 3] in one convolution."""
    kernel = np.zeros((3, 3, 3, 9), dtype="float32")
    for channel in range(3):
        # Centre tap: pass RGB through, scaled from [0, 255] to [0, 2].
        kernel[1, 1, channel, channel] = 1.0 / 127.5
    high_pass = np.stack([_LAPLACIAN, _SOBEL_X, _SOBEL_X.T], axis=-1) * (gain / 255.0)
    for index in range(3):
        luma_filter = high_pass[:, :, np.newaxis, index] * _LUMA[np.newaxis, np.newaxis, :]
        kernel[:, :, :, 3 + index] = luma_filter
        kernel[:, :, :, 6 + index] = -luma_filter
    return kernel


@keras.saving.register_keras_serializable(package="sbdn")
class HighPassFilters(keras.layers.Layer):
    """Turn RGB in [0, 255] into 9 non-negative channels: RGB and rectified high-pass responses.

    Blur removes high spatial frequencies, so a blur detector mostly needs local high-frequency
    energy. A fixed Laplacian and two Sobel derivatives of the luminance, computed at full
    input resolution, let the first learned layer work on a strided grid without losing the
    finest frequencies. Output channels (one 3x3 convolution and a ReLU, so it is cheap)::

        [r, g, b, relu(lap), relu(dx), relu(dy), relu(-lap), relu(-dx), relu(-dy)]

    RGB is scaled to [0, 2]. Positive and negative halves keep edge polarity, and their sum is
    the absolute response, i.e. local energy, the quantity blur lowers. High-pass responses of
    luminance in [0, 1] are multiplied by ``gain`` so that on natural images they have roughly
    the spread of the RGB channels. Borders are zero-padded, like the black letterbox padding.

    Args:
        gain: scale applied to the high-pass responses of luminance in [0, 1].
    """

    def __init__(self, gain: float = 8.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gain = gain
        # A constant, not a weight: the filters are part of the design and never trained.
        self._kernel = _stem_kernel(gain)

    def call(self, images: Any) -> Any:
        images = ops.cast(images, "float32")
        return ops.relu(ops.conv(images, self._kernel, strides=1, padding="same"))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], 9)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"gain": self.gain})
        return config
