"""Model files, input geometry (letterboxing, tiles) and the Beam model handler for `.keras` models.

Which view a model gets is decided here; the letterbox and resize geometry itself (and its
TensorFlow ops) lives in :mod:`sbdn_pipeline.geometry`, shared with the training reader and
the benchmarks. A model looks at an image in one of two ways (:class:`ViewSpec`):

* letterbox only (tile budget 0): the whole image, scaled to fit its square input without
  distortion and padded with black (:func:`sbdn_pipeline.geometry.letterbox`); masks are
  mapped back by cropping the padding away. Training sees images this way too.
* tiles (budget N >= 1): square tiles at (or within 2x of) the image's native scale, planned
  by :mod:`sbdn_pipeline.tiling`, plus, when asked for, the letterbox as a low-resolution
  global view.

Which view each model of the cascade gets, and how its outputs are read back (tile
probabilities pooled, tile masks stitched), is :mod:`sbdn_pipeline.cascade`'s: the detect job,
the evaluation and the benchmark all go through it, and so through :func:`model_pixels` and
:func:`model_inputs`; they see images the same way.

Model contract (see README, "Models"): input float32 RGB in [0, 255] of shape (B, S, S, 3);
a classifier returns (B, 1) P(blurry), an identifier returns (B, S/k, S/k, 1) P(blurred) per pixel.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler

from sbdn_pipeline import atomic, geometry, images, tiling

_LOGGER = logging.getLogger(__name__)

ROLE_CLASSIFIER = "classifier"
ROLE_IDENTIFIER = "identifier"
# Used when a model has no static input size.
DEFAULT_INPUT_SIZE = {ROLE_CLASSIFIER: 384, ROLE_IDENTIFIER: 320}


class ModelFileError(Exception):
    """A model file that is missing, unreadable, tampered with or not a usable model."""


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """How one model looks at images.

    Attributes:
        size: side S of the model's square input.
        tiles: most tiles per image; 0 = the letterbox of the whole image only.
        align: tile starts are multiples of this (an identifier's mask stride).
        max_scale: largest downscale of the tiles (None: as far as covering the frame needs).
    """

    size: int
    tiles: int = 0
    align: int = 1
    max_scale: float | None = tiling.MAX_TILE_SCALE

    def plan(self, height: int, width: int) -> tiling.TilePlan | None:
        """The tiles of an image of (height, width); None for letterbox only."""
        if not self.tiles:
            return None
        return tiling.plan_tiles(height, width, self.size, self.tiles, self.align,
                                 self.max_scale)

    def jpeg_ratio(self, height: int, width: int) -> int:
        """DCT-domain downscale a JPEG of this size may be decoded with for this model."""
        if not self.tiles:
            return images.jpeg_downscale_ratio(width, height, self.size)
        # Half-size decoding gives exactly the plan's pixels when the plan is at 2x.
        return 2 if self.plan(height, width).scale >= 2 else 1


class ImageSource:
    """One image's bytes and its decodes (one per JPEG downscale ratio), decoded on demand.

    A DCT-domain downscale changes pixels slightly, so the decode a model sees depends only
    on that model's own options: an image gets the same P(blurry) whatever else is asked for.
    """

    def __init__(self, data: bytes, **decode_limits: Any):
        self.data = data
        self._limits = decode_limits
        self._decoded: dict[int, images.DecodedImage] = {}
        self.width = self.height = 0
        self.format = ""

    def decode_for(self, spec: ViewSpec) -> images.DecodedImage:
        """The decode this model sees (validated, EXIF orientation applied).

        Raises:
            images.ImageError: the bytes are not a usable image.
        """
        if self.format:
            ratio = spec.jpeg_ratio(self.height, self.width) if self.format == "JPEG" else 1
            if ratio in self._decoded:
                return self._decoded[ratio]
        chosen = []

        def choose(height: int, width: int) -> int:
            chosen.append(spec.jpeg_ratio(height, width))
            return chosen[-1]

        decoded = images.decode_image(self.data, jpeg_ratio=choose, **self._limits)
        self.width, self.height, self.format = decoded.width, decoded.height, decoded.format
        self._decoded[chosen[-1] if chosen else 1] = decoded
        return decoded


def model_pixels(source: ImageSource, spec: ViewSpec) -> tuple[np.ndarray,
                                                               tiling.TilePlan | None]:
    """The image at the scale one model analyses it: the plan's scale, or shrunk to S."""
    pixels = source.decode_for(spec).pixels
    plan = spec.plan(source.height, source.width)
    if plan is None:
        return geometry.shrink_to_long_side(pixels, spec.size), None
    if pixels.shape[:2] != (plan.scaled_height, plan.scaled_width):
        pixels = geometry.resize_area(pixels, plan.scaled_height, plan.scaled_width)
    return pixels, plan


def model_inputs(pixels: np.ndarray, plan: tiling.TilePlan | None, size: int,
                 with_global: bool) -> tuple[np.ndarray, geometry.LetterboxInfo | None]:
    """One image's model inputs as one batch: its tiles, then (optionally) its letterbox.

    Returns:
        (float32 (n, S, S, 3), letterbox geometry of the global view or None). Without a plan
        the batch is the letterbox alone.
    """
    parts, info = [], None
    if plan is not None:
        parts.append(tiling.extract_tiles(pixels, plan))
    if with_global or plan is None:
        boxed, info = geometry.letterbox(pixels, size)
        parts.append(boxed[None])
    return np.concatenate(parts) if len(parts) > 1 else parts[0], info


class ModelOutputError(ValueError):
    """A model answered with something that is not a probability (NaN, inf, outside [0, 1])."""

    error_type = "invalid_model_output"


# Float32 sigmoids can land a hair outside [0, 1]; anything further is a broken model.
_PROBABILITY_TOLERANCE = 1e-4


def check_probabilities(values: np.ndarray, what: str) -> np.ndarray:
    """Return ``values`` clipped to [0, 1] when they are probabilities (within rounding).

    Raises:
        ModelOutputError: NaN, infinite or clearly out-of-range outputs; such an image gets
            an errors row instead of a verdict computed from garbage.
    """
    values = np.asarray(values)
    finite = np.isfinite(values)
    if not finite.all():
        raise ModelOutputError(f"{what} returned {int((~finite).sum())} NaN/infinite values")
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if low < -_PROBABILITY_TOLERANCE or high > 1 + _PROBABILITY_TOLERANCE:
        raise ModelOutputError(f"{what} returned values outside [0, 1] "
                               f"(min {low:.4g}, max {high:.4g})")
    return np.clip(values, 0.0, 1.0)


def file_sha256(path: str) -> str:
    """Hex sha256 of a file on any Beam-supported file system."""
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A verified model file.

    Attributes:
        path: where the `.keras` file is.
        sha256: its content hash (checked again when a worker loads it).
        role: "classifier" or "identifier".
        input_size: side of the square input the model expects.
        mask_stride: identifier only: input pixels per mask pixel (1 for classifiers).
        shipped: the model is the default shipped with the package: workers find it in their
            own installation (the submitter's path means nothing inside a worker image).
    """

    path: str
    sha256: str
    role: str
    input_size: int
    mask_stride: int = 1
    shipped: bool = False

    def path_on_worker(self) -> str:
        """Where this process finds the model file.

        A local worker process sees the submitter's file; a worker in a container image has
        its own installation of the package, where the shipped model has the same hash.
        """
        if self.shipped and not os.path.exists(self.path):
            from sbdn_pipeline import default_models

            return default_models.default_model(self.role)[0]
        return self.path

    @property
    def model_id(self) -> str:
        """Stable id recorded in the results: file name plus content hash."""
        name = os.path.basename(self.path.rstrip("/"))
        return f"{name}@sha256:{self.sha256[:16]}"


def _import_custom_layers() -> None:
    """Register our architectures with Keras so their `.keras` files load in safe mode."""
    try:
        import sbdn_pipeline.architectures  # noqa: F401
    except ImportError:
        pass


def verify_model_file(path: str, expected_sha256: str = "") -> str:
    """Check a model file exists, is readable and (when given) has the expected hash.

    Returns:
        The file's sha256.

    Raises:
        ModelFileError: missing or unreadable file, or a hash mismatch.
    """
    if not FileSystems.exists(path):
        raise ModelFileError(f"model file not found: {path}")
    try:
        actual = file_sha256(path)
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"model file unreadable: {path}: {exc}") from exc
    if expected_sha256 and actual != expected_sha256:
        raise ModelFileError(
            f"model file {path} has sha256 {actual}, expected {expected_sha256}: "
            "it was changed or corrupted; refusing to load it"
        )
    return actual


def load_keras_model(path: str, expected_sha256: str = "") -> Any:
    """Load a `.keras` file with safe_mode=True after checking its hash.

    Raises:
        ModelFileError: missing/unreadable file, hash mismatch, or not a loadable Keras model.
    """
    sha256 = verify_model_file(path, expected_sha256)
    return _load_verified(path, sha256)


# Loaded models by content hash. With the in-process runner the submitting CLI (which loads
# each model once to validate it) and the Beam worker are the same process: the worker then
# reuses the validated model instead of loading and warming it up a second time.
_LOADED_MODELS: dict[str, Any] = {}
_LOADED_MODELS_LOCK = threading.Lock()


def _load_verified(path: str, sha256: str) -> Any:
    with _LOADED_MODELS_LOCK:
        if sha256 not in _LOADED_MODELS:
            _LOADED_MODELS[sha256] = _load_from_file(path, sha256)
        return _LOADED_MODELS[sha256]


def _load_from_file(path: str, sha256: str) -> Any:
    import keras

    _import_custom_layers()
    local_path = path
    if "://" in path:  # Keras reads local files only: copy remote models next to the worker.
        local_path = _copy_to_local(path, sha256)
    try:
        return keras.saving.load_model(local_path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"cannot load Keras model {path}: {first_line}") from exc


def _copy_to_local(uri: str, sha256: str) -> str:
    import tempfile

    local = os.path.join(tempfile.gettempdir(), f"sbdn-model-{sha256[:16]}.keras")
    if not os.path.exists(local):
        with FileSystems.open(uri, compression_type="uncompressed") as src:
            atomic.write_bytes(local, src.read())
    return local


def inspect_model(path: str, role: str, expected_sha256: str = "") -> ModelInfo:
    """Load a model once (on the machine that submits the job) and check it fits its role.

    Raises:
        ModelFileError: when the file is unusable or its inputs/outputs do not match the role.
    """
    sha256 = verify_model_file(path, expected_sha256)
    model = _load_verified(path, sha256)
    input_shape = tuple(model.inputs[0].shape)
    if len(input_shape) != 4 or input_shape[-1] != 3:
        raise ModelFileError(f"{path}: expected an RGB image input (B, S, S, 3), got {input_shape}")
    static = input_shape[1] if input_shape[1] == input_shape[2] else None
    input_size = int(static) if static else DEFAULT_INPUT_SIZE[role]
    output_shape = tuple(model.outputs[0].shape)
    stride = 1
    if role == ROLE_CLASSIFIER:
        if output_shape[1:] not in ((1,), ()):
            raise ModelFileError(
                f"{path}: a classifier must output (B, 1) blur probabilities, got {output_shape}"
            )
    else:
        if len(output_shape) != 4 or output_shape[-1] != 1:
            raise ModelFileError(
                f"{path}: an identifier must output a (B, h, w, 1) mask, got {output_shape}"
            )
        probe = model(np.zeros((1, input_size, input_size, 3), np.float32), training=False)
        mask_side = int(probe.shape[1])
        if mask_side <= 0 or input_size % mask_side:
            raise ModelFileError(
                f"{path}: mask side {mask_side} does not divide the input side {input_size}"
            )
        stride = input_size // mask_side
    return ModelInfo(
        path=path,
        sha256=sha256,
        role=role,
        input_size=input_size,
        mask_stride=stride,
    )


_TF_THREADS_LOCK = threading.Lock()
_TF_THREADS_SET = False


def configure_tensorflow_threads(intra_op_threads: int | None) -> None:
    """Limit TF's thread pools once per process, so parallel Beam workers don't oversubscribe."""
    global _TF_THREADS_SET
    import tensorflow as tf

    with _TF_THREADS_LOCK:
        if _TF_THREADS_SET or not intra_op_threads:
            return
        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            # TF was already initialised in this process (e.g. by a decode): keep its pools.
            _LOGGER.debug("TensorFlow thread pools already initialised; not changing them")
        _TF_THREADS_SET = True


# Forward passes by model (models live as long as the process: see _LOADED_MODELS).
_PREDICTORS: dict[int, Any] = {}


def predictor_for(model: Any) -> Any:
    """The model's forward pass as one function, traced once for every batch size.

    Keras' ``predict_on_batch`` traces its graph again for the second batch shape it sees (a
    second ~0.5-0.7 s per model at start-up, measured); a ``tf.function`` whose signature
    leaves the batch dimension open is traced once. Its outputs are bit-identical.

    Returns:
        A function float32 (n, S, S, 3) -> numpy outputs (n, ...). Objects that are not Keras
        models (anything with ``predict_on_batch``) are called as they are.
    """
    if not hasattr(model, "inputs"):
        return lambda images: np.asarray(model.predict_on_batch(images))
    with _LOADED_MODELS_LOCK:
        if id(model) not in _PREDICTORS:
            import tensorflow as tf

            if not _PREDICTORS:
                # Dropped before interpreter shutdown: a tf.function collected after
                # TensorFlow's own modules are torn down prints a TypeError from __del__.
                atexit.register(_PREDICTORS.clear)

            signature = [tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)]
            forward = tf.function(lambda images: model(images, training=False),
                                  input_signature=signature, autograph=False)
            _PREDICTORS[id(model)] = (model, lambda images: forward(images).numpy())
        return _PREDICTORS[id(model)][1]


class KerasModelHandler(ModelHandler[np.ndarray, np.ndarray, Any]):
    """RunInference handler for a verified `.keras` model; examples are float32 (S, S, 3).

    The model is loaded once per worker (RunInference shares it across the worker's threads)
    and its hash is checked again there, so a worker never runs a different file than the one
    that was validated when the job was submitted.
    """

    def __init__(self, info: ModelInfo, *, batch_size: int, intra_op_threads: int | None = None):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self._info = info
        self._intra_op_threads = intra_op_threads

    def load_model(self) -> Any:
        configure_tensorflow_threads(self._intra_op_threads)
        model = load_keras_model(self._info.path_on_worker(), self._info.sha256)
        # Warm-up: the one trace of the forward pass, before timing-sensitive batches.
        size = self._info.input_size
        predictor_for(model)(np.zeros((1, size, size, 3), np.float32))
        return model

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: Any,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[np.ndarray]:
        stacked = np.stack(batch).astype(np.float32, copy=False)
        return list(predictor_for(model)(stacked))

    def get_metrics_namespace(self) -> str:
        return f"sbdn_{self._info.role}"


class ImageKeyedModelHandler(KeyedModelHandler):
    """Beam's KeyedModelHandler, keyed by each image's record, without a pickle per batch.

    For its bytes metric Beam pickles every batch with its keys (``len(pickle.dumps(...))``);
    our keys hold each image's file bytes and decodes, so that metric alone cost ~6 ms per
    image (profiled: 9% of a one-process run). The model inputs' array sizes are counted
    instead.
    """

    def get_num_bytes(self, batch: Sequence[tuple[Any, np.ndarray]]) -> int:
        return sum(int(getattr(example, "nbytes", 0)) for _, example in batch)


def _tiles_in(element: Any) -> int:
    """Batching weight of one element: the number of model inputs in its image's batch."""
    example = element[1] if isinstance(element, tuple) else element
    return max(1, int(np.shape(example)[0]))


class TiledKerasModelHandler(KerasModelHandler):
    """RunInference handler whose examples are whole images: float32 stacks (n, S, S, 3).

    Each image's tiles (and global view) travel as one element, so an image is never split
    over batches and its outputs come back together. Batches are limited by tiles, not images,
    and all tiles of a batch go through the model in calls of at most ``batch_size`` inputs.
    """

    def __init__(self, info: ModelInfo, *, batch_size: int, intra_op_threads: int | None = None):
        super().__init__(info, batch_size=batch_size, intra_op_threads=intra_op_threads)
        # With a size function, BatchElements' max_batch_size counts tiles, not elements.
        self._batching_kwargs["element_size_fn"] = _tiles_in
        self._calls_of = batch_size

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: Any,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[np.ndarray]:
        return predict_stacks(model, batch, self._calls_of)


def predict_stacks(model: Any, stacks: Sequence[np.ndarray], chunk: int) -> list[np.ndarray]:
    """Run several images' input stacks (n_i, S, S, 3) through a model, in calls of <= chunk.

    Returns:
        One output array (n_i, ...) per stack, in order.
    """
    stacked = np.concatenate(stacks).astype(np.float32, copy=False)
    predict = predictor_for(model)
    outputs = [predict(stacked[start:start + chunk]) for start in range(0, len(stacked), chunk)]
    predictions = np.concatenate(outputs)
    bounds = np.cumsum([len(stack) for stack in stacks])[:-1]
    return np.split(predictions, bounds)
