"""Letterbox and resize geometry: the one home of how images are fitted to a model's input.

Everything that scales an image to a model input, or maps a model mask back onto the image,
is defined here and only here: the detect job (:mod:`sbdn_pipeline.inference`), evaluation,
the training reader (:mod:`sbdn_pipeline.training.reader`) and the benchmarks all call it, so
they see images the same way. ``tests/test_geometry.py`` checks, bit for bit, that the numpy
path (one compiled graph per call) and the tf.data path (tensor functions inside a
``Dataset.map``) give identical pixels and geometry.

Two layers:

* pure Python (importable without TensorFlow): :class:`LetterboxInfo`,
  :func:`letterbox_geometry`, :func:`resize_method`, :func:`shrunk_size`,
  :func:`mask_window`, :func:`unletterbox_mask` and :func:`resize_mask` (PIL).
* TensorFlow ops, TensorFlow imported on first use:

  - numpy in, numpy out: :func:`letterbox`, :func:`resize_area`, :func:`shrink_to_long_side`;
  - tensors in, tensors out (for ``tf.data``): :func:`letterbox_geometry_tensor`,
    :func:`letterbox_tensor`.

The policy: the whole image is scaled to fit the S x S square without distortion (long side
to S, each side rounded half to even, at least 1), centred, padded with black. Pixels are
area-averaged when shrinking (aliasing would add false sharpness) and bilinear-interpolated
when enlarging; an image already at the content size is only cast to float32.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
from typing import Any

import numpy as np

METHOD_NONE = "none"
METHOD_AREA = "area"
METHOD_BILINEAR = "bilinear"


@dataclasses.dataclass(frozen=True)
class LetterboxInfo:
    """Where the image content sits inside the square model input.

    Attributes:
        size: side of the square model input.
        top: rows of padding above the content.
        left: columns of padding left of the content.
        content_height: rows of image content.
        content_width: columns of image content.
    """

    size: int
    top: int
    left: int
    content_height: int
    content_width: int


def letterbox_geometry(height: int, width: int, size: int) -> LetterboxInfo:
    """Scale (height, width) to fit a size x size square, keeping the aspect ratio, centred."""
    scale = size / max(height, width)
    content_height = max(1, min(size, round(height * scale)))
    content_width = max(1, min(size, round(width * scale)))
    top = (size - content_height) // 2
    left = (size - content_width) // 2
    return LetterboxInfo(size, top, left, content_height, content_width)


def resize_method(height: int, width: int, info: LetterboxInfo) -> str:
    """How an image of (height, width) is resized to its letterbox content.

    "none" when it already has the content size, "area" when its rows shrink, "bilinear"
    otherwise. :func:`letterbox_tensor` makes the same choice on tensors.
    """
    if (info.content_height, info.content_width) == (height, width):
        return METHOD_NONE
    return METHOD_AREA if info.content_height < height else METHOD_BILINEAR


def shrunk_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(rows, columns) of an image scaled so that its long side is ``long_side``.

    Each side rounded half to even, at least 1. Callers that only ever shrink check
    ``max(height, width) > long_side`` first.
    """
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def mask_window(info: LetterboxInfo, mask_side: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the image content in a model mask of side ``mask_side``.

    A mask of side m = size / k covers the input in k x k blocks, so the content occupies rows
    [top / k, (top + content_height) / k) of it, rounded outwards to whole mask pixels (and
    at least one pixel each way).
    """
    factor = info.size / mask_side
    top = int(np.floor(info.top / factor))
    left = int(np.floor(info.left / factor))
    bottom = int(np.ceil((info.top + info.content_height) / factor))
    right = int(np.ceil((info.left + info.content_width) / factor))
    return top, left, max(bottom, top + 1), max(right, left + 1)


def unletterbox_mask(mask: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Crop a model mask (m, m) or (m, m, 1) to the image content, at the mask's resolution."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    top, left, bottom, right = mask_window(info, mask.shape[0])
    return mask[top:bottom, left:right]


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float mask (h, w) to (height, width), float32 (PIL)."""
    from PIL import Image

    mask = np.asarray(mask, np.float32)
    if mask.shape == (height, width):
        return mask
    resized = Image.fromarray(mask, mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(resized, np.float32)


# --- TensorFlow: numpy in, numpy out ----------------------------------------------------------


def letterbox(image: Any, size: int) -> tuple[np.ndarray, LetterboxInfo]:
    """Fit an RGB uint8 image (h, w, 3) into a black size x size float32 square.

    Returns:
        (float32 array (size, size, 3) with values in [0, 255], geometry of the content).
    """
    height, width = int(image.shape[0]), int(image.shape[1])
    info = letterbox_geometry(height, width, size)
    boxed = _letterbox_graph(size, resize_method(height, width, info))(
        np.asarray(image, dtype=np.uint8),
        np.array([info.content_height, info.content_width], np.int32),
        np.array([info.top, info.left], np.int32),
    )
    return boxed.numpy(), info


def shrink_to_long_side(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """Area-downscale so the long side is at most long_side (the detect job's working copy).

    Every image is reduced to the largest model input before letterboxing: it bounds memory
    per image and is what the models see, in the detect job and in evaluation alike.
    """
    height, width = pixels.shape[:2]
    if max(height, width) <= long_side:
        return pixels
    return resize_area(pixels, *shrunk_size(height, width, long_side))


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-downscale an RGB uint8 image to (height, width), rounded back to uint8."""
    return _resize_area_graph()(np.asarray(image, dtype=np.uint8),
                                np.array([height, width], np.int32)).numpy()


def _resize_and_pad(image: Any, content_size: Any, offset: Any, size: int, method: str) -> Any:
    """The letterbox op itself, shared by the numpy graphs and the tensor path.

    ``image`` (h, w, C) of any real dtype is resized as it is given (``tf.image.resize``
    computes in float32 either way); padding is zeros. No clipping: area averaging can
    overshoot the input range by a few ulps, and callers that need exact ranges clip.
    """
    import tensorflow as tf

    if method == METHOD_NONE:
        pixels = tf.cast(image, tf.float32)
    else:
        pixels = tf.image.resize(image, content_size, method=method)
    return tf.image.pad_to_bounding_box(pixels, offset[0], offset[1], size, size)


@functools.lru_cache(maxsize=None)
def _letterbox_graph(size: int, method: str) -> Any:
    """One compiled TF graph per (input size, resize method).

    Run per image, the resize/cast/pad ops cost as much in eager dispatch as the network
    itself; as one graph they are a single call. Shapes are dynamic, so it traces once.
    """
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.uint8),
            tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([2], tf.int32),
        ],
        reduce_retracing=True,
    )
    def run(image: Any, content_size: Any, offset: Any) -> Any:
        return _resize_and_pad(image, content_size, offset, size, method)

    return run


@functools.lru_cache(maxsize=None)
def _resize_area_graph() -> Any:
    import tensorflow as tf

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([2], tf.int32)],
        reduce_retracing=True,
    )
    def run(image: Any, size: Any) -> Any:
        return tf.cast(tf.round(tf.image.resize(image, size, method="area")), tf.uint8)

    return run


def _release_graphs() -> None:
    # Drop the compiled graphs while TensorFlow is still intact: if they are garbage-collected
    # during interpreter teardown, TF prints "Exception ignored in AtomicFunction.__del__".
    _letterbox_graph.cache_clear()
    _resize_area_graph.cache_clear()


atexit.register(_release_graphs)


# --- TensorFlow: tensors in, tensors out (tf.data) --------------------------------------------


def letterbox_geometry_tensor(height: Any, width: Any, size: int) -> tuple[Any, ...]:
    """(content_height, content_width, top, left) int32 tensors: :func:`letterbox_geometry`
    on tensors (same float64 arithmetic, same round half to even)."""
    import tensorflow as tf

    height_f = tf.cast(height, tf.float64)
    width_f = tf.cast(width, tf.float64)
    scale = size / tf.maximum(height_f, width_f)
    content_h = tf.clip_by_value(tf.cast(tf.round(height_f * scale), tf.int32), 1, size)
    content_w = tf.clip_by_value(tf.cast(tf.round(width_f * scale), tf.int32), 1, size)
    return content_h, content_w, (size - content_h) // 2, (size - content_w) // 2


def letterbox_tensor(image: Any, size: int) -> Any:
    """:func:`letterbox` on a tensor (h, w, C) of any real dtype: float32 (size, size, C).

    Traceable (usable inside ``Dataset.map``); the resize method is chosen as
    :func:`resize_method` does, per image. Channels are resized independently, so extra
    channels (a mask stacked after RGB) get exactly the geometry of the pixels.
    """
    import tensorflow as tf

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    content_h, content_w, top, left = letterbox_geometry_tensor(height, width, size)
    content_size, offset = tf.stack([content_h, content_w]), tf.stack([top, left])

    def boxed(method: str):
        return lambda: _resize_and_pad(image, content_size, offset, size, method)

    same = tf.logical_and(tf.equal(content_h, height), tf.equal(content_w, width))
    result = tf.cond(
        same,
        boxed(METHOD_NONE),
        lambda: tf.cond(content_h < height, boxed(METHOD_AREA), boxed(METHOD_BILINEAR)),
    )
    return tf.ensure_shape(result, [size, size, image.shape[-1]])
