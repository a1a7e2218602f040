"""The cascade's per-image steps: views, inputs, outputs read back, the verdict, the runner."""

from __future__ import annotations

import numpy as np
import pytest

from sbdn_pipeline import cascade, geometry, inference, masks, tiling
from tests import imagegen


def _source(height: int, width: int, seed: int = 0) -> inference.ImageSource:
    return inference.ImageSource(imagegen.encode(
        imagegen.half_blurred_image(height, width, seed), "PNG"))


class _Echo:
    """A stand-in model: each input's top-left red value / 255, as a (n, 1) 'probability'."""

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        return batch[:, 0, 0, :1] / 255.0


def test_views_follow_the_model_rules() -> None:
    assert cascade.classifier_view(64, 4) == inference.ViewSpec(64, 4)
    identifier = cascade.identifier_view(64, 2, mask_stride=4)
    assert (identifier.align, identifier.max_scale) == (4, None)  # tiles always cover
    assert cascade.ClassifierSteps(64, 4, ("mean",)).view == cascade.classifier_view(64, 4)
    assert cascade.IdentifierSteps(64, 2, 4).view == identifier


def test_an_image_is_blurry_from_the_threshold_up() -> None:
    assert cascade.is_blurry(0.5, 0.5) is True
    assert cascade.is_blurry(np.float64(0.4999), 0.5) is False


@pytest.mark.parametrize("poolings, tiles, has_global", [
    (("mean",), True, False),
    (("global",), False, True),
    (("topk+global",), True, True),
    (tiling.POOLING_METHODS, True, True),
])
def test_classifier_inputs_hold_only_the_views_the_poolings_need(
        poolings, tiles, has_global) -> None:
    steps = cascade.ClassifierSteps(64, 4, poolings)
    plan, batch = steps.model_input(_source(128, 128))
    assert (plan is not None) == tiles
    assert len(batch) == (plan.count if tiles else 0) + (1 if has_global else 0)


def test_classifier_result_reads_tiles_first_and_the_global_view_last() -> None:
    plan = inference.ViewSpec(64, tiles=4).plan(128, 128)
    assert plan.count == 4
    outputs = np.array([[0.2], [0.4], [0.6], [0.8], [0.1]], np.float32)
    every = cascade.ClassifierSteps(64, 4, tiling.POOLING_METHODS)
    assert every.result(outputs, plan).pooled("mean") == pytest.approx(0.5)
    assert every.result(outputs, plan).pooled("max+global") == pytest.approx(0.45)
    assert every.result(outputs, plan).every_pooling()["global"] == pytest.approx(0.1)
    tiles_only = cascade.ClassifierSteps(64, 4, ("mean",))
    assert tiles_only.result(outputs[:1], None).pooled("mean") == pytest.approx(0.2)


def test_classifier_result_refuses_outputs_that_are_not_probabilities() -> None:
    steps = cascade.ClassifierSteps(64, 0, ("global",))
    with pytest.raises(inference.ModelOutputError):
        steps.result(np.array([[np.nan]]), None)


def test_coarse_mask_fills_tile_gaps_from_the_global_view() -> None:
    view = inference.ViewSpec(64, tiles=1, align=4)
    plan = view.plan(300, 300)  # one 64 px tile at 2x (150 x 150): most of the frame unseen
    assert not plan.covers
    info = geometry.letterbox_geometry(150, 150, 64)
    outputs = np.concatenate([np.ones((1, 16, 16, 1)), np.zeros((1, 16, 16, 1))]).astype(
        np.float32)
    mask = cascade.coarse_mask(outputs, plan, info, stride=4)
    assert mask.shape == (38, 38)
    assert mask[19, 19] > 0.9   # the tile in the middle said blurred
    assert mask[2, 2] < 0.05    # the global view (all sharp) decides where no tile looked


def test_identifier_steps_give_a_refined_mask_covering_the_analysed_image() -> None:
    steps = cascade.IdentifierSteps(64, 4, mask_stride=4)
    layout, batch = steps.model_input(_source(96, 128))
    assert layout.plan.covers and layout.letterbox is None  # no global view needed
    outputs = np.full((len(batch), 16, 16, 1), 0.75, np.float32)
    mask, pixels = steps.result(outputs, layout)
    assert mask.shape == pixels.shape[:2] == (96, 128)
    np.testing.assert_allclose(mask, 0.75, atol=1e-4)  # a flat mask stays flat


def test_run_steps_keeps_each_image_its_own_outputs() -> None:
    steps = cascade.ClassifierSteps(32, 0, ("global",))
    sources = [inference.ImageSource(imagegen.encode(np.full((32, 32, 3), value, np.uint8),
                                                     "PNG")) for value in (51, 204, 102)]
    results = cascade.run_steps(_Echo(), steps, sources, chunk=2)
    assert [round(r.pooled("global"), 3) for r in results] == [0.2, 0.8, 0.4]
    assert cascade.run_steps(_Echo(), steps, [], chunk=2) == []


def test_mask_stride_is_read_from_one_forward_pass(tiny_models) -> None:
    model = inference.load_keras_model(tiny_models["identifier"])
    assert cascade.mask_stride(model, imagegen.TINY_INPUT_SIZE) == imagegen.TINY_MASK_STRIDE


def test_the_job_and_the_evaluation_give_the_same_probability_and_mask(tiny_models) -> None:
    from beam_jobs import detect_models
    from beam_jobs.detect_records import ImageRecord
    from sbdn_pipeline.options import DetectOptions
    from sbdn_pipeline.training import evaluate

    data = imagegen.encode(imagegen.half_blurred_image(96, 128, 7), "PNG")
    infos = {role: inference.inspect_model(tiny_models[role], role)
             for role in ("classifier", "identifier")}
    models = {role: inference.load_keras_model(info.path, info.sha256)
              for role, info in infos.items()}
    options = DetectOptions(input="unused", output="unused", classifier_path="unused",
                            identifier_path="unused", classifier_tiles=4, identifier_tiles=4,
                            tile_pooling="topk+global", batch_size=16)
    record = ImageRecord(uri="a.png", sha256="x", size_bytes=len(data), modified_at_us=None,
                         format="PNG", width=128, height=96, source=inference.ImageSource(data))

    def job_step(role, prepare, finish):  # the job's three steps, without a pipeline
        keyed, batch = prepare(record)
        handler = inference.TiledKerasModelHandler(infos[role], batch_size=16)
        return finish((keyed, handler.run_inference([batch], models[role])[0]))

    classify = detect_models.ClassifyBlur(infos["classifier"], options, "run")
    job_p = job_step("classifier", classify.model_input,
                     classify.attach_probability).blur_probability
    segment = detect_models.SegmentBlur(infos["identifier"], options, "c", "run")
    row = job_step("identifier", segment.model_input, segment.to_row)

    tiles = evaluate.TileSettings(options.classifier_tiles, options.identifier_tiles,
                                  options.tile_pooling)
    size = imagegen.TINY_INPUT_SIZE
    pooled: dict[str, np.ndarray] = {}
    eval_p = evaluate.predict_classifier(models["classifier"], size,
                                         [inference.ImageSource(data)], pooled, tiles)
    eval_mask = evaluate.predict_masks(models["identifier"], size,
                                       [inference.ImageSource(data)], [(96, 128)], tiles)[0]
    assert eval_p[0] == job_p == pooled["p_topk_global"][0]
    assert row["mask_png"] == masks.encode_mask_png(masks.reduce_for_storage(eval_mask))
    assert row["blur_area_fraction"] == masks.mask_statistics(
        eval_mask, threshold=options.mask_threshold, image_width=128, image_height=96,
        min_region_fraction=options.min_region_fraction).blur_area_fraction
