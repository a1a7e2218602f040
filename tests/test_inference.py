"""Letterbox geometry, mask mapping and model-file verification."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sbdn_pipeline import geometry, inference
from tests import imagegen


def test_letterbox_keeps_aspect_ratio_and_pads_with_black() -> None:
    image = np.full((50, 100, 3), 200, np.uint8)
    boxed, info = geometry.letterbox(image, 64)
    assert boxed.shape == (64, 64, 3) and boxed.dtype == np.float32
    assert (info.content_height, info.content_width, info.top, info.left) == (32, 64, 16, 0)
    assert np.allclose(boxed[16:48], 200.0)
    assert np.all(boxed[:16] == 0) and np.all(boxed[48:] == 0)


def test_letterbox_of_portrait_image_pads_left_and_right() -> None:
    _, info = geometry.letterbox(np.zeros((120, 30, 3), np.uint8), 64)
    assert (info.content_height, info.content_width, info.top, info.left) == (64, 16, 0, 24)


def test_unletterbox_mask_crops_padding_at_mask_resolution() -> None:
    info = geometry.letterbox_geometry(height=50, width=100, size=64)  # rows 16..48 of 64
    mask = np.zeros((16, 16, 1), np.float32)  # stride 4
    mask[4:12] = 1.0  # exactly the content rows
    cropped = geometry.unletterbox_mask(mask, info)
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


# --- tiles: views, inputs, pooling, handler --------------------------------------------------


def test_image_source_gives_each_view_its_own_jpeg_decode() -> None:
    data = imagegen.encode(imagegen.sharp_image(768, 1024, 3), "JPEG", quality=95)
    source = inference.ImageSource(data)
    at_two = inference.ViewSpec(384, tiles=2)   # plan at 2x: JPEG decoded at half size
    native = inference.ViewSpec(384, tiles=6)   # plan at native scale
    assert source.decode_for(at_two).pixels.shape == (384, 512, 3)
    assert (source.width, source.height, source.format) == (1024, 768, "JPEG")
    assert source.decode_for(native).pixels.shape == (768, 1024, 3)
    pixels, plan = inference.model_pixels(source, at_two)
    assert pixels.shape == (384, 512, 3) and plan.count == 2
    # The same view gives the same pixels whatever other views were asked for before.
    fresh, _ = inference.model_pixels(inference.ImageSource(data), at_two)
    np.testing.assert_array_equal(pixels, fresh)


def test_model_inputs_are_tiles_then_the_global_view() -> None:
    image = np.full((300, 500, 3), 120, np.uint8)
    view = inference.ViewSpec(64, tiles=4)
    source = inference.ImageSource(imagegen.encode(image, "PNG"))
    pixels, plan = inference.model_pixels(source, view)
    batch, info = inference.model_inputs(pixels, plan, 64, with_global=True)
    assert batch.shape == (plan.count + 1, 64, 64, 3)
    assert info is not None and info.content_width == 64
    only_tiles, none = inference.model_inputs(pixels, plan, 64, with_global=False)
    assert only_tiles.shape == (plan.count, 64, 64, 3) and none is None
    letterbox_only, _ = inference.model_inputs(pixels, None, 64, with_global=False)
    assert letterbox_only.shape == (1, 64, 64, 3)


def test_tiled_handler_runs_all_tiles_of_a_batch_and_splits_them_back() -> None:
    calls = []

    class Doubling:
        def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
            calls.append(len(batch))
            return batch[:, 0, 0, :1] * 2

    info = inference.ModelInfo(path="unused.keras", sha256="0" * 64, role="classifier",
                               input_size=4)
    handler = inference.TiledKerasModelHandler(info, batch_size=3)
    images = [np.full((n, 4, 4, 3), float(n), np.float32) for n in (2, 1, 4)]
    outputs = list(handler.run_inference(images, Doubling()))
    assert [len(out) for out in outputs] == [2, 1, 4]
    assert [float(out[0, 0]) for out in outputs] == [4.0, 2.0, 8.0]
    assert calls == [3, 3, 1]  # 7 tiles in model calls of at most batch_size
    assert handler.batch_elements_kwargs()["max_batch_size"] == 3
    assert handler.batch_elements_kwargs()["element_size_fn"]((None, images[2])) == 4
