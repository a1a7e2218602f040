"""The measured rows: one function per row, each the whole body of its own subprocess.

``detect`` is the real command line (``detect_command``); the other rows run here, as
``python -m benchmarks.throughput.rows ROW SPEC.json``: they read the spec (images folder, models,
where to write the result), process every ``*.jpg`` of the folder and write a small result
JSON. Each notes ``time.time()`` when its first image was done; the parent subtracts the
moment it started the process (same clock), which gives the time to first result including
interpreter start, imports and model loading.

Heavy imports happen inside each function: the OpenCV and scikit-image rows must not pay for
TensorFlow.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.throughput.measurement import own_peak_rss_mb

Result = dict[str, Any]


def detect_command(
    images: str, output: str, summary_json: str, models: dict[str, str] | None,
    extra: Sequence[str],
) -> list[str]:
    """``sbdn detect`` exactly as a user runs it, plus ``--summary-json`` to read the counts.

    ``models`` None: the shipped models, i.e. truly the default options.
    """
    command = [sys.executable, "-m", "sbdn_pipeline.cli", "detect", images, "--output", output]
    command += ["--summary-json", summary_json]
    if models:
        command += ["--classifier", models["classifier"], "--identifier", models["identifier"]]
    return command + list(extra)


class FirstResult:
    """Remembers when the first image was done, on the parent's clock (``time.time()``)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def done(self) -> None:
        """Call when an image's result is complete; only the first call counts."""
        if self.at is None:
            self.at = time.time()


def _image_paths(folder: str) -> list[str]:
    """The row's inputs: the JPEGs of the folder, sorted (the corpus writes only .jpg)."""
    return sorted(glob.glob(os.path.join(folder, "*.jpg")))


def _model_input_size(model: Any, role: str) -> int:
    """A model's square input size; the role's default where the model takes any size."""
    from sbdn_pipeline import inference

    shape = tuple(model.inputs[0].shape)
    if shape[1] and shape[1] == shape[2]:
        return int(shape[1])
    return inference.DEFAULT_INPUT_SIZE[role]


def _job_models(spec: dict[str, Any]) -> tuple[Any, int, Any, int]:
    """(classifier, its input size, identifier, its input size), loaded and traced.

    Graph tracing on a dummy batch, as the job's KerasModelHandler.load_model does, so
    neither side's first batch carries it.
    """
    import numpy as np

    from sbdn_pipeline import inference

    classifier = inference.load_keras_model(spec["classifier"])
    identifier = inference.load_keras_model(spec["identifier"])
    classifier_size = _model_input_size(classifier, inference.ROLE_CLASSIFIER)
    identifier_size = _model_input_size(identifier, inference.ROLE_IDENTIFIER)
    for model, size in ((classifier, classifier_size), (identifier, identifier_size)):
        inference.predictor_for(model)(np.zeros((1, size, size, 3), np.float32))
    return classifier, classifier_size, identifier, identifier_size


def tfdata(spec: dict[str, Any], first: FirstResult) -> Result:
    """A hand-written tf.data loop with the job's models and cascade, no Beam: the floor.

    Files are read in a parallel, prefetched tf.data pipeline and batched; each batch goes
    through :mod:`sbdn_pipeline.cascade` with the job's default options, as the job does: the
    classifier's tiles and global view, pooled into P(blurry); images the verdict calls blurry
    wait for a full batch and go through the identifier's tiles, their masks stitched and
    refined by the image's edges. Model calls take at most ``batch_size`` inputs, as the
    job's. No hashing, header checks, mask statistics, PNGs or Parquet: that is the job's
    extra work.
    """
    import tensorflow as tf

    from sbdn_pipeline import cascade, inference, options

    classifier, classifier_size, identifier, identifier_size = _job_models(spec)
    batch_size, threshold = spec["batch_size"], spec["threshold"]
    classifier_steps = cascade.ClassifierSteps(
        classifier_size, options.DEFAULT_CLASSIFIER_TILES, (options.DEFAULT_TILE_POOLING,))
    identifier_steps = cascade.IdentifierSteps(
        identifier_size, options.DEFAULT_IDENTIFIER_TILES,
        cascade.mask_stride(identifier, identifier_size))
    paths = _image_paths(spec["images"])
    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), tf.constant(paths)))
        .map(lambda index, path: (index, tf.io.read_file(path)),
             num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    probabilities: dict[str, float] = {}
    blurry: list[Any] = []

    def segment(sources: list[Any]) -> None:
        cascade.run_steps(identifier, identifier_steps, sources, batch_size)
        if sources:
            first.done()

    for indices, contents in dataset:
        sources = [inference.ImageSource(bytes(content)) for content in contents.numpy()]
        results = cascade.run_steps(classifier, classifier_steps, sources, batch_size)
        for index, source, result in zip(indices.numpy(), sources, results):
            probability = result.pooled(options.DEFAULT_TILE_POOLING)
            probabilities[os.path.basename(paths[index])] = probability
            if cascade.is_blurry(probability, threshold):
                blurry.append(source)
            else:
                first.done()
        while len(blurry) >= batch_size:
            segment(blurry[:batch_size])
            blurry = blurry[batch_size:]
    segment(blurry)
    return {"images": len(probabilities), "identifier_images": sum(
        cascade.is_blurry(p, threshold) for p in probabilities.values()),
        "probabilities": probabilities}


def original(spec: dict[str, Any], first: FirstResult) -> Result:
    """The research notebooks' loop: per image ``load_img`` + ``predict``, then the identifier.

    Models are ResNet-50 and the original encoder-decoder with random weights (speed does not
    depend on weights), or the .keras files given (the smoke test's tiny stand-ins). Random
    weights give meaningless verdicts, so which images reach the identifier is fixed by
    ``spec["route"]`` (file names): the cascade then does the same work as ours.
    """
    import keras
    import numpy as np

    from sbdn_pipeline import inference
    from sbdn_pipeline.architectures import build_model

    def model(path: str | None, architecture: str) -> Any:
        return inference.load_keras_model(path) if path else build_model(architecture)

    classifier = model(spec.get("original_classifier"), "resnet50")
    identifier = model(spec.get("original_identifier"), "original-encoder-decoder")
    classifier_size = _model_input_size(classifier, inference.ROLE_CLASSIFIER)
    identifier_size = _model_input_size(identifier, inference.ROLE_IDENTIFIER)
    # Warm-up so the first image does not carry graph tracing (favours this row, not ours).
    classifier.predict(np.zeros((1, classifier_size, classifier_size, 3), np.float32), verbose=0)
    identifier.predict(np.zeros((1, identifier_size, identifier_size, 3), np.float32), verbose=0)
    route = set(spec["route"])
    paths = _image_paths(spec["images"])
    for path in paths:
        image = keras.utils.load_img(path, target_size=(classifier_size, classifier_size))
        batch = keras.utils.img_to_array(image)[None]
        classifier.predict(batch, verbose=0)
        if os.path.basename(path) in route:
            if identifier_size != classifier_size:
                image = keras.utils.load_img(path, target_size=(identifier_size, identifier_size))
                batch = keras.utils.img_to_array(image)[None]
            identifier.predict(batch, verbose=0)
        first.done()
    return {
        "images": len(paths),
        "identifier_images": len(route & {os.path.basename(p) for p in paths}),
        "models": [classifier.name, identifier.name],
    }


def laplacian(spec: dict[str, Any], first: FirstResult) -> Result:
    """``cv2.imread`` (full decode) + grey + variance of ``cv2.Laplacian``, per image.

    The classic one-number sharpness score: the speed reference issue 17 compares with.
    """
    import cv2

    paths = _image_paths(spec["images"])
    for path in paths:
        grey = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
        float(cv2.Laplacian(grey, cv2.CV_64F).var())
        first.done()
    return {"images": len(paths), "opencv_threads": cv2.getNumThreads()}


def blur_effect(spec: dict[str, Any], first: FirstResult) -> Result:
    """PIL full decode to grey + ``skimage.measure.blur_effect``, per image.

    The no-reference blur metric of Crété-Roffet et al. (a baseline of the model card): how a
    better classic per-image score compares in speed.
    """
    import numpy as np
    from PIL import Image
    from skimage.measure import blur_effect as metric

    paths = _image_paths(spec["images"])
    for path in paths:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))
        float(metric(grey))
        first.done()
    return {"images": len(paths)}


WORKERS: dict[str, Callable[[dict[str, Any], FirstResult], Result]] = {
    "tfdata": tfdata,
    "original": original,
    "laplacian": laplacian,
    "blur-effect": blur_effect,
}


def main(argv: Sequence[str]) -> int:
    """``ROW SPEC.json``: run one row in this process and write its result JSON."""
    row, spec_path = argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    first = FirstResult()
    result = WORKERS[row](spec, first)
    result["first_result_at"] = first.at
    result["self_peak_rss_mb"] = own_peak_rss_mb()
    with open(spec["result"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
