"""Small functional building blocks shared by the efficient networks (functions, not classes)."""

from __future__ import annotations

from typing import Any

from keras import layers


def conv_bn_relu(
    x: Any,
    filters: int,
    kernel_size: int,
    strides: int = 1,
    *,
    name: str,
    momentum: float = 0.99,
) -> Any:
    """Convolution, batch norm, ReLU (bias-free: the batch norm supplies the offset)."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def separable_block(
    x: Any,
    filters: int,
    *,
    strides: int = 1,
    dilation_rate: int = 1,
    name: str,
    momentum: float = 0.99,
) -> Any:
    """Depthwise 3x3 + pointwise 1x1 (MobileNet-v1 style), residual when shapes allow.

    Depthwise-separable convolutions cost about 1/8 of a full 3x3 convolution at these widths,
    which is what lets the networks afford high input resolution on a CPU.
    """
    shortcut = x
    x = layers.DepthwiseConv2D(
        3,
        strides=strides,
        dilation_rate=dilation_rate,
        padding="same",
        use_bias=False,
        name=f"{name}_dw",
    )(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_pw_bn")(x)
    if strides == 1 and shortcut.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_relu")(x)


def global_context(x: Any, *, reduction: int = 4, name: str) -> Any:
    """Squeeze-and-excitation gate: every position sees a summary of the whole image.

    Telling a smooth wall from a blurred one needs context; the gate lets image-wide statistics
    (is anything in this photo sharp?) re-weight local features at any input size.
    """
    channels = x.shape[-1]
    squeezed = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    squeezed = layers.Conv2D(
        max(8, channels // reduction), 1, activation="relu", name=f"{name}_reduce"
    )(squeezed)
    gate = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_expand")(squeezed)
    return layers.Multiply(name=f"{name}_scale")([x, gate])


def upsample_merge(x: Any, skip: Any, filters: int, *, name: str, momentum: float = 0.99) -> Any:
    """Bilinear 2x upsampling, concatenation with the encoder skip, one separable block."""
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = conv_bn_relu(x, filters, 1, name=f"{name}_mix", momentum=momentum)
    return separable_block(x, filters, name=f"{name}_refine", momentum=momentum)


__all__ = ["conv_bn_relu", "separable_block", "global_context", "upsample_merge"]
