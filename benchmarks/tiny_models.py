"""Tiny real Keras models with known behaviour, for benchmarks and tests that need no training.

The models are not trained: their weights are set by hand so that they measure local
Laplacian energy (fine detail). Low energy means blurry. That gives real `.keras` files whose
verdicts and masks are predictable on the images of :mod:`benchmarks.synthetic_images`, so
the pipeline can be run end to end without the shipped models (memory and bookkeeping do not
depend on the model).
"""

from __future__ import annotations

import os

import numpy as np

TINY_INPUT_SIZE = 64
TINY_MASK_STRIDE = 4
# P(blurry) = sigmoid(ENERGY_BIAS - ENERGY_WEIGHT * mean |Laplacian|); the decision point is
# an energy of 55 (grey levels): sharp 2-px texture at 64 px measures ~78, whole-frame blur ~8,
# a half-blurred square ~43.
ENERGY_WEIGHT = 0.1
ENERGY_BIAS = 5.5


def save_tiny_models(folder: str, size: int = TINY_INPUT_SIZE) -> dict[str, str]:
    """Build, save and return the paths of the tiny Laplacian-energy classifier and identifier."""
    import keras

    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
    grey_weights = np.full((1, 1, 3, 1), 1.0 / 3.0, np.float32)
    # Two channels, +L and -L: after ReLU they sum to |L| without a custom layer.
    laplacian_weights = np.stack([laplacian, -laplacian], axis=-1)[:, :, None, :]

    def energy(inputs: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
        grey = keras.layers.Conv2D(1, 1, use_bias=False, name=f"{prefix}_grey")
        edges = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name=f"{prefix}_lap")
        out = keras.layers.ReLU()(edges(grey(inputs)))
        grey.set_weights([grey_weights])
        edges.set_weights([laplacian_weights])
        return out

    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(energy(inputs, "c"))
    decide = keras.layers.Dense(1, activation="sigmoid", name="decide")
    classifier = keras.Model(inputs, decide(pooled), name="tiny_classifier")
    decide.set_weights([np.full((2, 1), -ENERGY_WEIGHT, np.float32),
                        np.array([ENERGY_BIAS], np.float32)])

    inputs = keras.Input((size, size, 3))
    local = keras.layers.AveragePooling2D(TINY_MASK_STRIDE)(energy(inputs, "i"))
    per_pixel = keras.layers.Conv2D(1, 1, activation="sigmoid", name="decide_pixel")
    identifier = keras.Model(inputs, per_pixel(local), name="tiny_identifier")
    per_pixel.set_weights([np.full((1, 1, 2, 1), -ENERGY_WEIGHT, np.float32),
                           np.array([ENERGY_BIAS], np.float32)])

    paths = {"classifier": os.path.join(folder, "tiny_classifier.keras"),
             "identifier": os.path.join(folder, "tiny_identifier.keras")}
    classifier.save(paths["classifier"])
    identifier.save(paths["identifier"])
    return paths


