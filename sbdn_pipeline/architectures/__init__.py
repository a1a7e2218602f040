"""Network definitions (code only; trained weights live in the top-level ``models/`` folder).

Importing this package registers every custom class with Keras, which is what lets their
``.keras`` files load with ``keras.saving.load_model(path, safe_mode=True)``.

Model I/O contract: input float32 RGB in [0, 255] of static shape (B, S, S, 3); a classifier
returns (B, 1) P(blurry); an identifier returns (B, S/k, S/k, 1) P(blurred) per mask pixel.
"""

from __future__ import annotations

from typing import Any

import keras

from sbdn_pipeline.architectures.base_model import BlurModel
from sbdn_pipeline.architectures.content_pooling import ContentPooling
from sbdn_pipeline.architectures.high_pass_filters import HighPassFilters
from sbdn_pipeline.architectures.highpass_evidence_classifier import HighPassEvidenceClassifier
from sbdn_pipeline.architectures.highpass_unet import HighPassUNet
from sbdn_pipeline.architectures.original_encoder_decoder import OriginalEncoderDecoder
from sbdn_pipeline.architectures.resnet50_classifier import ResNet50Classifier

ARCHITECTURES: dict[str, type[BlurModel]] = {
    "resnet50": ResNet50Classifier,
    "original-encoder-decoder": OriginalEncoderDecoder,
    "highpass-evidence-classifier": HighPassEvidenceClassifier,
    "highpass-unet": HighPassUNet,
}
DEFAULT_CLASSIFIER = "highpass-evidence-classifier"
DEFAULT_IDENTIFIER = "highpass-unet"


def architecture_class(name: str) -> type[BlurModel]:
    """Return the model class registered under ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {name!r}; known architectures: {known}") from None


def build_model(name: str, **kwargs: Any) -> keras.Model:
    """Build a fresh (randomly initialised) network by registry name.

    Args:
        name: a key of :data:`ARCHITECTURES`.
        **kwargs: constructor arguments, e.g. ``input_size=256``.
    """
    return architecture_class(name)(**kwargs)


def task_of(name: str) -> str:
    """Return "classifier" or "identifier" for a registered architecture name."""
    return architecture_class(name).task


def default_input_size(name: str) -> int:
    """Return the input side an architecture is trained and shipped at."""
    return architecture_class(name).default_input_size


__all__ = [
    "ARCHITECTURES",
    "DEFAULT_CLASSIFIER",
    "DEFAULT_IDENTIFIER",
    "BlurModel",
    "ContentPooling",
    "HighPassEvidenceClassifier",
    "HighPassFilters",
    "HighPassUNet",
    "OriginalEncoderDecoder",
    "ResNet50Classifier",
    "architecture_class",
    "build_model",
    "default_input_size",
    "task_of",
]
