"""Broken and hostile input: each file gets exactly one row with a clear reason; the job goes on."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sbdn_pipeline.cli import cli
from tests import imagegen
from tests.beam_jobs.test_detect import read_table, run_detect


def _save(image: Image.Image, image_format: str, **args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **args)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hostile_run(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    sharp = Image.fromarray(imagegen.sharp_image(96, 96, 1))
    blurred = Image.fromarray(imagegen.blurred_image(96, 96, 2))
    jpeg = _save(sharp, "JPEG", quality=95)
    png = _save(sharp, "PNG")
    exif_image = Image.fromarray(imagegen.blurred_image(64, 96, 3))
    exif = exif_image.getexif()
    exif[0x0112] = 6
    frames = [Image.fromarray(imagegen.blurred_image(48, 48, 10 + i)) for i in range(200)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:])
    expected = {
        # name: (table, error_type or expected verdict)
        "zero bytes.jpg": ("errors", "empty_file", b""),
        "truncated.jpg": ("errors", "decode_error", jpeg[: len(jpeg) // 2]),
        "truncated.png": ("errors", "decode_error", png[: len(png) // 2]),
        "random.jpg": ("errors", "not_an_image", np.random.default_rng(0).bytes(4096)),
        "error_page.jpg": ("errors", "not_an_image",
                           b"<!DOCTYPE html>\n<html><title>404 Not Found</title></html>"),
        "document.pdf": ("errors", "not_an_image", b"%PDF-1.4\n%binary"),
        "notes.txt": ("errors", "not_an_image", b"just some notes\n"),
        "bomb.png": ("errors", "too_many_pixels", imagegen.png_header_only(50_000, 50_000)),
        "absurd_aspect.png": ("errors", "aspect_ratio_out_of_range",
                              _save(Image.new("RGB", (2000, 20)), "PNG")),
        "one_pixel.png": ("errors", "image_too_small", _save(Image.new("RGB", (1, 1)), "PNG")),
        "cmyk.jpg": ("results", False, _save(sharp.convert("CMYK"), "JPEG", quality=98)),
        "sixteen_bit.png": ("results", True, _save(Image.fromarray(
            np.asarray(blurred.convert("L"), np.uint16) * 257), "PNG")),
        "palette.png": ("results", True, _save(blurred.convert("P"), "PNG")),
        "alpha.png": ("results", False, _save(sharp.convert("RGBA"), "PNG")),
        "animated.gif": ("results", True, animated.getvalue()),
        "exif_rotated.jpg": ("results", True, _save(exif_image, "JPEG", quality=95,
                                                     exif=exif.tobytes())),
        "spaces and ünïcödé 图片.png": ("results", False, png),
    }
    for name, (_, _, data) in expected.items():
        (folder / name).write_bytes(data)
    os.symlink(folder / "does-not-exist.jpg", folder / "broken_link.jpg")
    expected["broken_link.jpg"] = ("errors", "unreadable", None)
    os.mkfifo(folder / "fifo.jpg")  # reading a FIFO would block forever
    expected["fifo.jpg"] = ("errors", "unreadable", None)
    output = str(tmp_path_factory.mktemp("hostile_out") / "out")
    summary = run_detect(str(folder), output, tiny_models)
    return {"summary": summary, "output": output, "expected": expected, "folder": str(folder)}


def test_every_hostile_file_has_exactly_one_row(hostile_run) -> None:
    results = read_table(hostile_run["output"], "results").to_pylist()
    errors = read_table(hostile_run["output"], "errors").to_pylist()
    names = [os.path.basename(r["image_uri"]) for r in results + errors]
    assert sorted(names) == sorted(hostile_run["expected"])
    assert hostile_run["summary"].reconciled


def test_each_broken_file_has_the_right_reason(hostile_run) -> None:
    errors = {os.path.basename(r["image_uri"]): r
              for r in read_table(hostile_run["output"], "errors").to_pylist()}
    for name, (table, reason, _) in hostile_run["expected"].items():
        if table == "errors":
            assert errors[name]["error_type"] == reason, (name, errors[name]["error_message"])
            assert errors[name]["error_message"]


def test_odd_but_valid_images_are_classified(hostile_run) -> None:
    results = {os.path.basename(r["image_uri"]): r
               for r in read_table(hostile_run["output"], "results").to_pylist()}
    for name, (table, blurry, _) in hostile_run["expected"].items():
        if table == "results":
            assert results[name]["is_blurry"] is blurry, name
    rotated = results["exif_rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (64, 96)  # stored 96x64, EXIF says rotate


def test_unicode_and_space_uris_are_kept_verbatim(hostile_run) -> None:
    uris = [r["image_uri"] for r in read_table(hostile_run["output"], "results").to_pylist()]
    assert os.path.join(hostile_run["folder"], "spaces and ünïcödé 图片.png") in uris


def test_mostly_broken_input_fails_loudly_after_writing(tiny_models, tmp_path) -> None:
    folder = tmp_path / "wrong_bucket"
    folder.mkdir()
    for index in range(4):
        (folder / f"page_{index}.jpg").write_bytes(b"<html>AccessDenied</html>")
    (folder / "ok.png").write_bytes(imagegen.encode(imagegen.sharp_image(96, 96, 0), "PNG"))
    result = CliRunner().invoke(cli, [
        "detect", str(folder), "--output", str(tmp_path / "out"),
        "--classifier", tiny_models["classifier"], "--identifier", tiny_models["identifier"],
        "--run-id", "wrong"])
    assert result.exit_code == 3
    assert "80% of the processed images failed" in result.output
    assert len(read_table(str(tmp_path / "out"), "errors")) == 4
    assert len(read_table(str(tmp_path / "out"), "results")) == 1
