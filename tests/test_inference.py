"""Letterbox geometry, mask mapping and model-file verification."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sbdn_pipeline import inference
from tests import imagegen


def test_letterbox_keeps_aspect_ratio_and_pads_with_black() -> None:
    image = np.full((50, 100, 3), 200, np.uint8)
    boxed, info = inference.letterbox(image, 64)
    assert boxed.shape == (64, 64, 3) and boxed.dtype == np.float32
    assert (info.content_height, info.content_width, info.top, info.left) == (32, 64, 16, 0)
    assert np.allclose(boxed[16:48], 200.0)
    assert np.all(boxed[:16] == 0) and np.all(boxed[48:] == 0)


def test_letterbox_of_portrait_image_pads_left_and_right() -> None:
    _, info = inference.letterbox(np.zeros((120, 30, 3), np.uint8), 64)
    assert (info.content_height, info.content_width, info.top, info.left) == (64, 16, 0, 24)


def test_unletterbox_mask_crops_padding_at_mask_resolution() -> None:
    info = inference.letterbox_geometry(height=50, width=100, size=64)  # rows 16..48 of 64
    mask = np.zeros((16, 16, 1), np.float32)  # stride 4
    mask[4:12] = 1.0  # exactly the content rows
    cropped = inference.unletterbox_mask(mask, info)
    assert cropped.shape == (8, 16)
    assert np.all(cropped == 1.0)


def test_inspect_model_reads_input_size_and_mask_stride(tiny_models: dict[str, str]) -> None:
    classifier = inference.inspect_model(tiny_models["classifier"], "classifier")
    identifier = inference.inspect_model(tiny_models["identifier"], "identifier")
    assert (classifier.input_size, classifier.mask_stride) == (imagegen.TINY_INPUT_SIZE, 1)
    assert identifier.mask_stride == imagegen.TINY_MASK_STRIDE
    assert classifier.model_id.startswith("tiny_classifier.keras@sha256:")


def test_model_used_in_the_wrong_role_is_rejected(tiny_models: dict[str, str]) -> None:
    with pytest.raises(inference.ModelFileError, match="identifier must output"):
        inference.inspect_model(tiny_models["classifier"], "identifier")
    with pytest.raises(inference.ModelFileError, match="classifier must output"):
        inference.inspect_model(tiny_models["identifier"], "classifier")


def test_tampered_model_file_is_refused(tiny_models: dict[str, str], tmp_path) -> None:
    copy = tmp_path / "classifier.keras"
    shutil.copy(tiny_models["classifier"], copy)
    expected = inference.file_sha256(str(copy))
    with open(copy, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(inference.ModelFileError, match="changed or corrupted"):
        inference.load_keras_model(str(copy), expected)


def test_missing_and_garbage_model_files_give_clear_errors(tmp_path) -> None:
    with pytest.raises(inference.ModelFileError, match="not found"):
        inference.inspect_model(str(tmp_path / "nope.keras"), "classifier")
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(inference.ModelFileError, match="cannot load Keras model"):
        inference.inspect_model(str(garbage), "classifier")
