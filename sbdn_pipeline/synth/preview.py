"""Contact sheet of a synthetic data set: examples with their blur masks outlined.

Used by ``sbdn show-dataset`` so a person can look at what the models learn from.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

OUTLINE_COLOUR = (255, 32, 32)
CAPTION_HEIGHT = 44


def mask_outline(mask: np.ndarray, thickness: int = 2) -> np.ndarray:
    """Boolean (H, W) map of the pixels on the inner border of a binary mask."""
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        return np.zeros_like(mask)
    # Pad with "outside" so a mask touching the frame edge is outlined there too, which shows
    # a whole-frame blur as a frame.
    padded = np.pad(mask, 1, constant_values=False)
    eroded = ndimage.binary_erosion(padded, iterations=thickness)[1:-1, 1:-1]
    return mask & ~eroded


def caption_for(example: dict) -> str:
    """Three-line caption: verdict, kind and shape; strength, area and size; group and
    degradations."""

    def text(value) -> str:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    size = f"{int(example['width'])}x{int(example['height'])}"
    if int(example["label"]) == 0:
        first, second = "SHARP", size
    else:
        first = f"BLUR {text(example['blur_kind'])} {text(example['region_shape'])}"
        strength = float(example["strength"])
        area = 100 * float(example["area_fraction"])
        second = f"s={strength:.1f}px a={area:.0f}% {size}"
    third = f"{text(example['source_group'])} [{text(example['degradations']) or '-'}]"
    return f"{first}\n{second}\n{third}"


def render_tile(image: np.ndarray, mask: np.ndarray, caption: str, tile_size: int) -> Image.Image:
    """One grid cell: the image fitted into tile_size x tile_size, mask outlined, captioned."""
    picture = Image.fromarray(image)
    picture.thumbnail((tile_size, tile_size), Image.LANCZOS)
    small_mask = (
        np.asarray(
            Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).resize(
                picture.size, Image.NEAREST
            )
        )
        > 0
    )
    pixels = np.asarray(picture).copy()
    pixels[mask_outline(small_mask)] = OUTLINE_COLOUR
    cell = Image.new("RGB", (tile_size, tile_size + CAPTION_HEIGHT), (255, 255, 255))
    cell.paste(
        Image.fromarray(pixels),
        ((tile_size - picture.width) // 2, (tile_size - picture.height) // 2),
    )
    ImageDraw.Draw(cell).multiline_text(
        (3, tile_size + 2), caption, fill=(0, 0, 0), font=_font(), spacing=2
    )
    return cell


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def make_grid(tiles: list[Image.Image], columns: int | None = None, gap: int = 4) -> Image.Image:
    """Arrange equally sized tiles in rows."""
    if not tiles:
        raise ValueError("no tiles to arrange")
    columns = columns or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    width, height = tiles[0].size
    sheet = Image.new(
        "RGB", (columns * (width + gap) + gap, rows * (height + gap) + gap), (230, 230, 230)
    )
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        sheet.paste(tile, (gap + column * (width + gap), gap + row * (height + gap)))
    return sheet


def pick_examples(
    data_dir: str, split: str, count: int, seed: int, positives_fraction: float
) -> list[dict]:
    """A seeded random selection of decoded examples with about the requested share of positives."""
    import tensorflow as tf

    from sbdn_pipeline.training import reader

    wanted_positives = round(count * positives_fraction)
    wanted = {1: wanted_positives, 0: count - wanted_positives}
    files = reader.list_shards(data_dir, split)
    records = (
        tf.data.TFRecordDataset(files, compression_type="GZIP")
        .map(reader.parse_serialized)
        .shuffle(512, seed=seed)
    )
    chosen: list[dict] = []
    spare: list[dict] = []
    for parsed in records:
        label = int(parsed["label"])
        if wanted[label] > 0:
            wanted[label] -= 1
            chosen.append(parsed)
        elif len(spare) < count:
            spare.append(parsed)
        if len(chosen) == count:
            break
    # A split with too few of one class: fill up with the other.
    chosen += spare[: count - len(chosen)]
    decoded = [reader.decode_parsed(parsed) for parsed in chosen]
    # Positives first, then negatives, so the sheet reads in a fixed way.
    decoded.sort(key=lambda example: -int(example["label"]))
    return [{key: value.numpy() for key, value in example.items()} for example in decoded]


def write_grid(
    data_dir: str,
    png_path: str,
    *,
    split: str = "train",
    count: int = 16,
    tile_size: int = 256,
    seed: int = 0,
    positives_fraction: float = 0.75,
    max_colours: int | None = None,
) -> int:
    """Render ``count`` examples of a split to a PNG contact sheet.

    Args:
        max_colours: quantise the sheet to at most 256 colours to make the PNG smaller (at the
            cost of banding in smooth areas); None keeps full colour.

    Returns:
        The number of examples drawn.
    """
    examples = pick_examples(data_dir, split, count, seed, positives_fraction)
    if not examples:
        raise FileNotFoundError(f"split '{split}' of '{data_dir}' has no examples")
    tiles = [
        render_tile(e["image"], e["mask"][..., 0], caption_for(e), tile_size) for e in examples
    ]
    sheet = make_grid(tiles)
    if max_colours:
        sheet = sheet.quantize(
            colors=max_colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    sheet.save(png_path, format="PNG", optimize=True)
    return len(examples)
