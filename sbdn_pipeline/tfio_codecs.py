"""The only module that touches tensorflow-io: decoders for formats core TensorFlow lacks.

tensorflow-io 0.37.1 is its last release and is ABI-bound to TensorFlow 2.16; keeping it
behind this one function lets it be swapped for another decoder without touching the pipeline.
"""

from __future__ import annotations

import tensorflow as tf


def decode(data: bytes, image_format: str) -> tf.Tensor:
    """Decode a WebP or TIFF file (first frame/page) to an RGB uint8 tensor (h, w, 3)."""
    import tensorflow_io as tfio

    if image_format == "WEBP":
        rgba = tfio.image.decode_webp(data)
    elif image_format == "TIFF":
        rgba = tfio.experimental.image.decode_tiff(data, index=0)
    else:
        raise ValueError(f"tensorflow-io decoder asked for unsupported format {image_format}")
    # Both decoders return RGBA uint8; alpha is dropped like for PNG/GIF.
    return tf.cast(rgba[..., :3], tf.uint8)
