"""A small real detect output with two runs, shared by the report and summarize tests."""

from __future__ import annotations

import os

import pytest

from tests import imagegen
from tests.beam_jobs.test_detect import run_detect

RUN_A = "20261101T000000Z-aaaaaa"
RUN_B = "20261102T000000Z-bbbbbb"
# A file name that would break the page if it were not escaped.
HOSTILE_NAME = "<img src=x onerror=alert(1)> & \"q\".png"


def _write(folder: str, name: str, data: bytes) -> str:
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def report_output(tmp_path_factory, tiny_models) -> dict[str, object]:
    """Two runs into one output folder; one blurry image is deleted after its run.

    Run A: 3 sharp, 2 blurred, 1 half-blurred, 2 corrupt. Run B: 1 sharp, 2 blurred (one
    with a hostile file name, one deleted afterwards) and an empty file.
    """
    root = tmp_path_factory.mktemp("report")
    first, second = str(root / "photos_a"), str(root / "photos_b")
    paths = {
        "sharp_a": [_write(first, f"sharp_{i}.png",
                           imagegen.encode(imagegen.sharp_image(96, 128, i), "PNG"))
                    for i in range(3)],
        "blurred_a": [_write(first, f"blurred_{i}.jpg",
                             imagegen.encode(imagegen.blurred_image(96, 128, 10 + i), "JPEG",
                                             quality=95)) for i in range(2)],
        "half": _write(first, "half.png",
                       imagegen.encode(imagegen.half_blurred_image(96, 96, 20), "PNG")),
        "corrupt": [_write(first, "corrupt/empty.jpg", b""),
                    _write(first, "corrupt/page.jpg", b"<!DOCTYPE html><html>404</html>")],
        "sharp_b": _write(second, "sharp_b.png",
                          imagegen.encode(imagegen.sharp_image(96, 96, 30), "PNG")),
        "hostile": _write(second, HOSTILE_NAME,
                          imagegen.encode(imagegen.blurred_image(96, 96, 31), "PNG")),
        "deleted": _write(second, "deleted.png",
                          imagegen.encode(imagegen.blurred_image(64, 128, 32), "PNG")),
        "empty_b": _write(second, "empty_b.jpg", b""),
    }
    output = str(root / "out")
    run_detect(first, output, tiny_models, run_id=RUN_A)
    run_detect(second, output, tiny_models, run_id=RUN_B)
    os.remove(paths["deleted"])
    return {"output": output, "paths": paths, "root": str(root)}
