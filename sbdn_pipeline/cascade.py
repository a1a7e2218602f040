"""The cascade: classify every image, split by the verdict, segment the blurry ones.

The one home of the cascade's per-image logic, shared by the detect job
(``beam_jobs.detect_models``), the evaluation (``training.evaluate.predict_classifier`` and
``predict_masks``) and the throughput benchmark's tf.data row, so that the three see images
the same way and cannot drift apart:

* how each model looks at an image: :func:`classifier_view`, :func:`identifier_view`;
* each model's two per-image steps, :class:`ClassifierSteps` and :class:`IdentifierSteps`:
  ``model_input`` (an image -> its stack of model inputs, and the layout to read the outputs
  with) and ``result`` (the outputs -> P(blurry) by view, or the refined mask);
* the verdict: :func:`is_blurry`;
* :func:`run_steps`: both steps over a list of images, without Beam.

The detect job runs the same two steps inside its RunModelStage (Beam's batching, an error
row per failed step); nothing here builds a Beam transform or imports Beam (``inference``,
underneath, does for file systems and its model handlers). TensorFlow is reached only through
:func:`sbdn_pipeline.inference.predictor_for`, on the first model call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from sbdn_pipeline import geometry, inference, masks, tiling
from sbdn_pipeline.inference import ImageSource, ViewSpec
from sbdn_pipeline.options import MASK_REFINE_LONG_SIDE

# The global view's weight in an identifier mask: it decides only where no tile looked.
_GLOBAL_MASK_PRIOR = 0.01


def classifier_view(input_size: int, tile_budget: int) -> ViewSpec:
    """How the classifier looks at images: up to ``tile_budget`` tiles (0: the letterbox)."""
    return ViewSpec(input_size, tile_budget)


def identifier_view(input_size: int, tile_budget: int, mask_stride: int) -> ViewSpec:
    """How the identifier looks at images: tile starts on whole mask pixels.

    Its tiles always cover the frame (a mask must cover all of it): when the budget cannot at
    2x, they go further down, which costs no more model passes than the budget.
    """
    return ViewSpec(input_size, tile_budget, align=mask_stride, max_scale=None)


def is_blurry(probability: float, threshold: float) -> bool:
    """The verdict that sends an image to the identifier: P(blurry) at least the threshold."""
    return bool(probability >= threshold)


# --- classifier ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ViewProbabilities:
    """One image's classifier outputs by view, before pooling.

    Attributes:
        tiles: P(blurry) of each tile, in plan order (the letterbox's alone without tiles).
        global_p: the global view's P; None when the image's batch had no global view.
    """

    tiles: np.ndarray
    global_p: float | None

    def pooled(self, method: str) -> float:
        """One P(blurry) by a pooling method (:data:`sbdn_pipeline.tiling.POOLING_METHODS`)."""
        return tiling.pool_probabilities(self.tiles, self.global_p, method)

    def every_pooling(self) -> dict[str, float]:
        """P(blurry) by every pooling method (needs the global view)."""
        return tiling.pool_all(self.tiles, self.global_p)


@dataclasses.dataclass(frozen=True)
class ClassifierSteps:
    """The classifier's per-image steps, computing only the views its poolings need.

    The detect job asks for its one pooling method (no global view for a tiles-only method,
    no tiles for "global"); the evaluation asks for every method, to choose the default.

    Attributes:
        input_size: side of the classifier's square input.
        tile_budget: most tiles per image (0: the letterbox only).
        poolings: the pooling methods the results will be asked for.
    """

    input_size: int
    tile_budget: int
    poolings: tuple[str, ...]

    @property
    def view(self) -> ViewSpec:
        return classifier_view(self.input_size, self.tile_budget)

    @property
    def uses_global_view(self) -> bool:
        return any(tiling.needs_global_view(method) for method in self.poolings)

    @property
    def uses_tiles(self) -> bool:
        return any(tiling.needs_tiles(method) for method in self.poolings)

    def model_input(self, source: ImageSource) -> tuple[tiling.TilePlan | None, np.ndarray]:
        """(the image's tile plan, its batch: tiles first, global view last when used).

        The plan is None when the batch is the letterbox alone.
        """
        pixels, plan = inference.model_pixels(source, self.view)
        if plan is not None and not self.uses_tiles:
            plan = None  # "global" pooling alone: the letterbox is the whole batch
        batch, _ = inference.model_inputs(pixels, plan, self.input_size, self.uses_global_view)
        return plan, batch

    def result(self, predictions: np.ndarray, plan: tiling.TilePlan | None) -> ViewProbabilities:
        """The image's outputs (its batch's, in order) read back by view.

        Raises:
            inference.ModelOutputError: the outputs are not probabilities.
        """
        values = inference.check_probabilities(
            np.asarray(predictions, np.float64).reshape(-1), "classifier")
        if plan is None:  # the letterbox alone is both the one "tile" and the global view
            return ViewProbabilities(values[-1:], float(values[-1]))
        global_p = float(values[plan.count]) if self.uses_global_view else None
        return ViewProbabilities(values[:plan.count], global_p)


# --- identifier ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IdentifierLayout:
    """What reads one image's identifier outputs back into a mask.

    Attributes:
        plan: the image's tiles (None: the letterbox alone).
        letterbox: the global view's geometry; only where the tiles leave gaps (or without
            tiles), else None.
        pixels: the image as the identifier analysed it; the mask is refined on them.
    """

    plan: tiling.TilePlan | None
    letterbox: geometry.LetterboxInfo | None
    pixels: np.ndarray


class RefinedMask(NamedTuple):
    """An identifier's result for one image."""

    mask: np.ndarray  # P(blurred) per pixel, covering the whole image, refined on ``pixels``
    pixels: np.ndarray  # the RGB pixels it was refined on (capped; overlays are drawn on them)


@dataclasses.dataclass(frozen=True)
class IdentifierSteps:
    """The identifier's per-image steps: tiles -> stitched coarse mask -> refined mask.

    Attributes:
        input_size: side of the identifier's square input.
        tile_budget: most tiles per image (0: the letterbox only).
        mask_stride: input pixels per mask pixel.
    """

    input_size: int
    tile_budget: int
    mask_stride: int

    @property
    def view(self) -> ViewSpec:
        return identifier_view(self.input_size, self.tile_budget, self.mask_stride)

    def model_input(self, source: ImageSource) -> tuple[IdentifierLayout, np.ndarray]:
        """(the image's layout, its batch: tiles, then the global view where tiles leave gaps)."""
        pixels, plan = inference.model_pixels(source, self.view)
        use_global = plan is not None and not plan.covers
        batch, info = inference.model_inputs(pixels, plan, self.input_size, use_global)
        return IdentifierLayout(plan, info, pixels), batch

    def result(self, predictions: np.ndarray, layout: IdentifierLayout) -> RefinedMask:
        """The image's mask from its outputs, refined by its edges at the analysed resolution.

        Raises:
            inference.ModelOutputError: the outputs are not probabilities.
        """
        coarse = coarse_mask(predictions, layout.plan, layout.letterbox, self.mask_stride)
        return refine_to_image(coarse, layout.pixels)


def coarse_mask(predictions: np.ndarray, plan: tiling.TilePlan | None,
                info: geometry.LetterboxInfo | None, stride: int) -> np.ndarray:
    """One image's mask at 1/stride of the analysed scale, from its batch's outputs.

    Tile masks are stitched; where the tiles leave gaps (a plan that cannot cover the frame)
    the global view's mask fills in, blended so that no seam appears at tile borders.
    """
    outputs = inference.check_probabilities(np.asarray(predictions, np.float32), "identifier")
    if plan is None:
        return geometry.unletterbox_mask(outputs[-1], info)
    mask, weight = tiling.stitch_masks(outputs[:plan.count], plan, stride)
    if info is None:
        return mask
    fill = geometry.unletterbox_mask(outputs[plan.count], info)
    fill = geometry.resize_mask(fill, *mask.shape)
    return (mask * weight + fill * _GLOBAL_MASK_PRIOR) / (weight + _GLOBAL_MASK_PRIOR)


def refine_to_image(coarse: np.ndarray, pixels: np.ndarray) -> RefinedMask:
    """Refine an identifier mask by the image's edges, at the resolution it was analysed at.

    Args:
        coarse: the stitched mask (1/stride of the analysed resolution), covering the image.
        pixels: the image as the identifier analysed it (``inference.model_pixels``): native
            scale when its tiles are, at most 2x below otherwise; shrunk to
            ``MASK_REFINE_LONG_SIDE`` for the refinement.
    """
    pixels = geometry.shrink_to_long_side(pixels, MASK_REFINE_LONG_SIDE)
    return RefinedMask(masks.refine_mask(coarse, pixels), pixels)


def mask_stride(model: Any, input_size: int) -> int:
    """Input pixels per mask pixel of an identifier, from one forward pass (also a warm-up)."""
    probe = inference.predictor_for(model)(np.zeros((1, input_size, input_size, 3), np.float32))
    return input_size // int(probe.shape[1])


# --- running the steps without Beam -------------------------------------------------------------


class ModelSteps(Protocol):
    """A model's two per-image steps (:class:`ClassifierSteps`, :class:`IdentifierSteps`)."""

    def model_input(self, source: ImageSource) -> tuple[Any, np.ndarray]: ...

    def result(self, predictions: np.ndarray, layout: Any) -> Any: ...


def run_steps(model: Any, steps: ModelSteps, sources: Sequence[ImageSource],
              chunk: int) -> list[Any]:
    """Each image through a model's steps; all their inputs in model calls of <= ``chunk``.

    Returns:
        One ``steps.result`` per image, in order.
    """
    if not sources:
        return []
    prepared = [steps.model_input(source) for source in sources]
    outputs = inference.predict_stacks(model, [batch for _, batch in prepared], chunk)
    return [steps.result(output, layout) for (layout, _), output in zip(prepared, outputs)]
