"""Every registered architecture: output shape, config round trip, .keras save/reload."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import sbdn_pipeline.architectures as architectures
from sbdn_pipeline.architectures import ARCHITECTURES, build_model, task_of

# Tiny configurations keep these tests fast; ResNet-50 has no width knob, 32 px is its minimum.
TINY_CONFIGS = {
    "resnet50": {"input_size": 32},
    "original-encoder-decoder": {
        "input_size": 64,
        "encoder_filters": [4, 4, 8, 8, 8],
        "decoder_filters": [8, 8, 4, 4, 4],
    },
    "highpass-evidence-classifier": {
        "input_size": 64,
        "stem_filters": 8,
        "stage_filters": [8, 8, 16, 16],
        "stage_blocks": [1, 1, 1, 2],
        "evidence_filters": 16,
    },
    "highpass-unet": {
        "input_size": 64,
        "encoder_filters": [8, 8, 8, 16, 16],
        "encoder_blocks": [1, 1, 1, 1, 2],
    },
}


def _expected_output_shape(name: str, model: keras.Model, batch: int) -> tuple:
    size = TINY_CONFIGS[name]["input_size"]
    if task_of(name) == "classifier":
        return (batch, 1)
    side = size // model.mask_stride
    return (batch, side, side, 1)


def test_every_registered_architecture_has_a_tiny_test_config():
    assert set(TINY_CONFIGS) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_output_shape_and_range_on_ones(name):
    model = build_model(name, **TINY_CONFIGS[name])
    size = TINY_CONFIGS[name]["input_size"]
    outputs = np.asarray(model(np.ones((2, size, size, 3), "float32") * 128.0))
    assert outputs.shape == _expected_output_shape(name, model, 2)
    assert np.all((outputs >= 0.0) & (outputs <= 1.0))
    # The detect job reads the input size from the static input shape.
    assert tuple(model.inputs[0].shape[1:]) == (size, size, 3)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_get_config_round_trip_rebuilds_the_same_network(name):
    model = build_model(name, **TINY_CONFIGS[name])
    config = model.get_config()
    for key, value in TINY_CONFIGS[name].items():
        assert config[key] == value
    rebuilt = type(model).from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.count_params() == model.count_params()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_save_and_safe_mode_reload_give_identical_outputs(name, tmp_path):
    model = build_model(name, **TINY_CONFIGS[name])
    size = TINY_CONFIGS[name]["input_size"]
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    expected = np.asarray(model(images, training=False))
    path = str(tmp_path / f"{name}.keras")
    model.save(path)

    reloaded = keras.saving.load_model(path, safe_mode=True)

    assert type(reloaded) is type(model)
    np.testing.assert_allclose(np.asarray(reloaded(images, training=False)), expected, atol=1e-5)


def test_registry_reports_tasks_and_rejects_unknown_names():
    assert task_of("resnet50") == "classifier"
    assert task_of("original-encoder-decoder") == "identifier"
    assert task_of(architectures.DEFAULT_CLASSIFIER) == "classifier"
    assert task_of(architectures.DEFAULT_IDENTIFIER) == "identifier"
    with pytest.raises(ValueError, match="known architectures: .*resnet50"):
        build_model("vgg16")


def test_shipping_input_sizes_and_mask_strides():
    assert architectures.default_input_size("resnet50") == 224
    assert architectures.default_input_size("original-encoder-decoder") == 224
    unet = build_model("highpass-unet", **{**TINY_CONFIGS["highpass-unet"], "input_size": 96})
    assert unet.mask_stride == 4
    assert unet.outputs[0].shape[1:] == (24, 24, 1)
    decoder = build_model("original-encoder-decoder", **TINY_CONFIGS["original-encoder-decoder"])
    assert decoder.mask_stride == 1


@pytest.mark.parametrize("output_stride", [1, 2, 4])
def test_highpass_unet_output_stride_sets_mask_resolution(output_stride):
    config = {**TINY_CONFIGS["highpass-unet"], "output_stride": output_stride}
    model = build_model("highpass-unet", **config)
    assert model.outputs[0].shape[1:] == (64 // output_stride, 64 // output_stride, 1)


def test_highpass_unet_without_static_size_runs_on_any_multiple_of_32():
    config = {**TINY_CONFIGS["highpass-unet"], "input_size": None}
    model = build_model("highpass-unet", **config)
    assert model(np.ones((1, 96, 160, 3), "float32")).shape == (1, 24, 40, 1)


@pytest.mark.parametrize(
    ("name", "bad_config", "message"),
    [
        ("highpass-unet", {"input_size": 50}, "multiple of 32"),
        ("highpass-unet", {"input_size": 64, "output_stride": 8}, "output_stride"),
        ("original-encoder-decoder", {"input_size": 48}, "divisible by 32"),
        (
            "original-encoder-decoder",
            {"input_size": 64, "encoder_filters": [4, 4], "decoder_filters": [4]},
            "same number of stages",
        ),
        (
            "highpass-evidence-classifier",
            {"input_size": 64, "stage_filters": [8, 8], "stage_blocks": [1]},
            "equal length",
        ),
    ],
)
def test_invalid_configurations_fail_with_a_clear_message(name, bad_config, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, **bad_config)


def test_classifier_blur_map_output_is_one_cell_per_32_pixels():
    config = {**TINY_CONFIGS["highpass-evidence-classifier"], "blur_map_output": True}
    model = build_model("highpass-evidence-classifier", **config)
    p_blurry, blur_map = model(np.ones((2, 64, 64, 3), "float32"))
    assert p_blurry.shape == (2, 1) and blur_map.shape == (2, 2, 2, 1)
    assert model.output_names == ["p_blurry", "blur_map"]
    assert type(model).from_config(model.get_config()).get_config()["blur_map_output"] is True


def test_resnet50_batch_norm_momentum_reaches_every_backbone_layer():
    model = build_model("resnet50", input_size=32, batch_norm_momentum=0.8)
    rebuilt = type(model).from_config(model.get_config())
    for network in (model, rebuilt):
        norms = [
            layer
            for layer in network.get_layer("resnet50").layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        assert len(norms) == 53 and {layer.momentum for layer in norms} == {0.8}
