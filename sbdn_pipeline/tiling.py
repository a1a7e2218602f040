"""Tiling geometry: which square model inputs an image is analysed through, and back again.

Blur lives in the highest frequencies, and shrinking a photo erases them (see the design
notes, "Looking at the pixels"). So instead of one letterbox of the whole image, a model can
look at the image through S x S tiles at (or within 2x of) its native scale:

* native scale (s = 1) when ``budget`` tiles cover the frame;
* else the smallest downscale s in (1, 2] that lets the budget cover it;
* else s = 2 and the budget is spread evenly over the frame (tiles need not cover it all).

Sides shorter than S are padded with black (letterbox-style; the models ignore black padding),
never upscaled. Tiles sit on an even grid and may overlap. This module is plain numpy: the
pixel resampling (area downscale to the plan's size) is in :mod:`sbdn_pipeline.inference`,
which owns the image-size policy and imports this module.

Also here: pooling of tile probabilities into one P(blurry), and stitching of tile masks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

# The largest downscale tiles are analysed at: beyond 2x the evidence of slight blur is gone.
MAX_TILE_SCALE = 2.0
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one image are.

    Attributes:
        height: rows of the original image.
        width: columns of the original image.
        tile: side S of a (square) tile, the model input.
        scale: downscale factor s >= 1: tiles are cut from the image resized to
            (scaled_height, scaled_width) = ceil((height, width) / s).
        scaled_height: rows of the image the tiles are cut from.
        scaled_width: columns of the image the tiles are cut from.
        tops: first row of each tile row, in scaled pixels (negative when a short side is
            padded: the content is centred in the tile).
        lefts: first column of each tile column, in scaled pixels.
    """

    height: int
    width: int
    tile: int
    scale: float
    scaled_height: int
    scaled_width: int
    tops: tuple[int, ...]
    lefts: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.tops) * len(self.lefts)

    @property
    def origins(self) -> list[tuple[int, int]]:
        """(top, left) of every tile, row by row."""
        return [(top, left) for top in self.tops for left in self.lefts]

    @property
    def covers(self) -> bool:
        """True when every pixel of the (scaled) image is inside at least one tile."""
        return _axis_covered(self.tops, self.tile, self.scaled_height) and _axis_covered(
            self.lefts, self.tile, self.scaled_width)


def _axis_covered(starts: Sequence[int], tile: int, length: int) -> bool:
    reach = 0
    for start in sorted(starts):
        if start > reach:
            return False
        reach = max(reach, start + tile)
    return reach >= length


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(rows, columns) of an image downscaled by ``scale``, rounded up.

    Rounded up like a JPEG DCT-domain downscale, so that at s = 2 a JPEG decoded at half
    size is already at the plan's size (no resampling).
    """
    return (max(1, math.ceil(height / scale - _EPS)), max(1, math.ceil(width / scale - _EPS)))


def tiles_to_cover(length: int, tile: int) -> int:
    """Tiles of side ``tile`` needed to cover ``length`` pixels (1 when it fits, padded)."""
    return max(1, math.ceil(length / tile))


def _covering_count(height: int, width: int, tile: int, scale: float) -> int:
    rows, cols = scaled_size(height, width, scale)
    return tiles_to_cover(rows, tile) * tiles_to_cover(cols, tile)


def choose_scale(height: int, width: int, tile: int, budget: int,
                 max_scale: float | None = MAX_TILE_SCALE) -> tuple[float, bool]:
    """Smallest downscale in [1, max_scale] at which ``budget`` tiles cover the frame.

    Returns:
        (scale, covered); (max_scale, False) when even max_scale is not enough. With
        max_scale None the budget always covers (at worst one tile holds the whole image).
    """
    if budget < 1:
        raise ValueError(f"tile budget must be at least 1, got {budget}")
    # The tile count only changes where a side becomes exactly k tiles long: try those.
    upper = math.inf if max_scale is None else float(max_scale)
    candidates = {1.0} | ({upper} if max_scale is not None else set())
    for side in (height, width):
        for k in range(1, tiles_to_cover(side, tile) + 1):
            candidates.add(side / (k * tile))
    for scale in sorted(c for c in candidates if 1.0 <= c <= upper):
        if _covering_count(height, width, tile, scale) <= budget:
            return scale, True
    return float(max_scale), False


def _spread_grid(rows: int, cols: int, tile: int, budget: int) -> tuple[int, int]:
    """Tile rows x columns (product <= budget) that spread a budget over a frame it can't cover.

    Uses as many tiles as possible, then the grid whose cells (the frame share each tile
    stands for) are closest to square: tiles evenly spread in both directions.
    """
    best, best_key = (1, 1), None
    for n_rows in range(1, min(budget, tiles_to_cover(rows, tile)) + 1):
        n_cols = min(budget // n_rows, tiles_to_cover(cols, tile))
        elongation = abs(math.log((rows / n_rows) / (cols / n_cols)))
        key = (-(n_rows * n_cols), round(elongation, 9))
        if best_key is None or key < best_key:
            best, best_key = (n_rows, n_cols), key
    return best


def grid_positions(length: int, tile: int, n: int, align: int = 1) -> tuple[int, ...]:
    """Starts of ``n`` tiles spread evenly over ``length`` pixels.

    When they can cover it, the first and last tiles touch the ends (overlapping evenly); when
    they cannot, each tile is centred in its 1/n share of the side. A side shorter than the tile gets one tile with the content centred (padding both sides).
    ``align`` rounds starts to multiples of it (identifier tiles: the mask stride), so that tile
    masks land on whole mask pixels; a tile may then overhang the frame by < align pixels.
    """
    if length <= tile:
        return (-(((tile - length) // 2) // align) * align,)
    if n * tile < length:
        # Too few to cover: each tile sits in the middle of its share of the frame.
        cell = length / n
        return tuple(int(round(((i + 0.5) * cell - tile / 2) / align)) * align for i in range(n))
    starts = [int(round(start / align)) * align for start in np.linspace(0, length - tile, n)]
    # Round the last start up, so rounding never leaves the far edge uncovered.
    starts[-1] = math.ceil((length - tile) / align) * align
    return tuple(starts)


def plan_tiles(height: int, width: int, tile: int, budget: int, align: int = 1,
               max_scale: float | None = MAX_TILE_SCALE) -> TilePlan:
    """The tiles one model looks at an image of (height, width) through (module docstring).

    Args:
        height: rows of the original image.
        width: columns of the original image.
        tile: the model's input side S.
        budget: most tiles per image (>= 1).
        align: tile starts are multiples of this (the identifier's mask stride).
        max_scale: largest downscale; None: downscale as far as the budget needs to cover
            the frame (a mask must cover all of it).
    """
    scale, covered = choose_scale(height, width, tile, budget, max_scale)
    rows, cols = scaled_size(height, width, scale)
    if covered:
        n_rows, n_cols = tiles_to_cover(rows, tile), tiles_to_cover(cols, tile)
    else:
        n_rows, n_cols = _spread_grid(rows, cols, tile, budget)
    return TilePlan(height=height, width=width, tile=tile, scale=scale, scaled_height=rows,
                    scaled_width=cols, tops=grid_positions(rows, tile, n_rows, align),
                    lefts=grid_positions(cols, tile, n_cols, align))


def _overlap(start: int, tile: int, length: int) -> tuple[int, int, int, int]:
    """(source start, source stop, target start, target stop) of a tile along one axis."""
    src0, src1 = max(start, 0), min(start + tile, length)
    return src0, src1, src0 - start, src1 - start


def extract_tiles(pixels: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Cut the plan's tiles out of the image at the plan's scale.

    Args:
        pixels: (scaled_height, scaled_width, 3) image, any numeric dtype.

    Returns:
        float32 (count, S, S, 3); parts of a tile outside the image are black.
    """
    if tuple(pixels.shape[:2]) != (plan.scaled_height, plan.scaled_width):
        raise ValueError(f"pixels are {pixels.shape[:2]}, the plan expects "
                         f"{(plan.scaled_height, plan.scaled_width)}")
    size = plan.tile
    tiles = np.zeros((plan.count, size, size, pixels.shape[2]), np.float32)
    for index, (top, left) in enumerate(plan.origins):
        r0, r1, tr0, tr1 = _overlap(top, size, plan.scaled_height)
        c0, c1, tc0, tc1 = _overlap(left, size, plan.scaled_width)
        tiles[index, tr0:tr1, tc0:tc1] = pixels[r0:r1, c0:c1]
    return tiles


# --- pooling of tile probabilities --------------------------------------------------------------


def pool_mean(tiles: np.ndarray) -> float:
    """Mean of the tile probabilities (what the probe on real photos measured)."""
    return float(np.mean(tiles))


def pool_topk(tiles: np.ndarray) -> float:
    """Mean of the ceil(n/2) most blurry tiles: a blurred half of the frame counts fully."""
    ordered = np.sort(np.asarray(tiles, np.float64).reshape(-1))[::-1]
    return float(np.mean(ordered[: math.ceil(ordered.size / 2)]))


def pool_max(tiles: np.ndarray) -> float:
    """The most blurry tile."""
    return float(np.max(tiles))


TILE_POOLS = {"mean": pool_mean, "topk": pool_topk, "max": pool_max}
GLOBAL_POOLING = "global"
# "<pool>+global": the average of the global view's P and the tiles' pooled P.
POOLING_METHODS = (
    *TILE_POOLS, GLOBAL_POOLING, *(f"{name}+{GLOBAL_POOLING}" for name in TILE_POOLS))


def needs_global_view(method: str) -> bool:
    """Whether a pooling method uses the low-resolution global view (the whole letterbox)."""
    return method == GLOBAL_POOLING or method.endswith(f"+{GLOBAL_POOLING}")


def needs_tiles(method: str) -> bool:
    """Whether a pooling method uses the tiles."""
    return method != GLOBAL_POOLING


def pool_probabilities(tiles: np.ndarray | None, global_p: float | None, method: str) -> float:
    """One P(blurry) from tile probabilities and/or the global view's, by method name.

    Raises:
        ValueError: unknown method, or a view the method needs is missing.
    """
    if method not in POOLING_METHODS:
        raise ValueError(f"unknown tile pooling {method!r}; choose from {POOLING_METHODS}")
    if needs_global_view(method) and global_p is None:
        raise ValueError(f"pooling {method!r} needs the global view")
    if method == GLOBAL_POOLING:
        return float(global_p)
    if tiles is None or np.size(tiles) == 0:
        raise ValueError(f"pooling {method!r} needs at least one tile")
    pooled = TILE_POOLS[method.split("+")[0]](np.asarray(tiles, np.float64))
    return (pooled + float(global_p)) / 2 if needs_global_view(method) else pooled


def pool_all(tiles: np.ndarray, global_p: float) -> dict[str, float]:
    """Every pooling method at once (evaluation records them all to choose the default)."""
    return {method: pool_probabilities(tiles, global_p, method) for method in POOLING_METHODS}


# --- stitching of tile masks --------------------------------------------------------------------


def tile_window(side: int) -> np.ndarray:
    """(side, side) blending weights: high in the middle, low (never zero) at the borders.

    Overlapping tile masks are averaged with these weights: a tile's border pixels see less
    context, so the neighbour whose middle covers them is trusted more.
    """
    ramp = np.sin(np.pi * (np.arange(side) + 0.5) / side) ** 2
    ramp = 0.05 + 0.95 * ramp
    return np.outer(ramp, ramp).astype(np.float32)


def stitch_masks(tile_masks: np.ndarray, plan: TilePlan, stride: int) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Blend the tiles' masks into one mask of the scaled image at 1/stride resolution.

    Args:
        tile_masks: (count, m, m) or (count, m, m, 1) with m = S / stride, in plan order.
        plan: the tiles' plan (tile starts are multiples of ``stride``).
        stride: input pixels per mask pixel.

    Returns:
        (mask, weight), both (ceil(scaled_height / stride), ceil(scaled_width / stride));
        weight is 0 where no tile looked (possible only when the plan does not cover).
    """
    tile_masks = np.asarray(tile_masks, np.float32)
    if tile_masks.ndim == 4:
        tile_masks = tile_masks[..., 0]
    side = tile_masks.shape[1]
    if tile_masks.shape[0] != plan.count or side * stride != plan.tile:
        raise ValueError(f"{tile_masks.shape} masks do not fit {plan.count} tiles of "
                         f"{plan.tile} px at stride {stride}")
    rows, cols = math.ceil(plan.scaled_height / stride), math.ceil(plan.scaled_width / stride)
    total = np.zeros((rows, cols), np.float32)
    weight = np.zeros((rows, cols), np.float32)
    window = tile_window(side)
    for tile_mask, (top, left) in zip(tile_masks, plan.origins):
        r0, r1, tr0, tr1 = _overlap(top // stride, side, rows)
        c0, c1, tc0, tc1 = _overlap(left // stride, side, cols)
        piece = window[tr0:tr1, tc0:tc1]
        total[r0:r1, c0:c1] += piece * tile_mask[tr0:tr1, tc0:tc1]
        weight[r0:r1, c0:c1] += piece
    mask = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    return mask, weight
