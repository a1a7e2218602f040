"""`sbdn report`: one self-contained HTML page built from a real two-run output folder."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from sbdn_pipeline.report import html_report, images, overlays, tables
from sbdn_pipeline.cli.report import report
from tests.report.conftest import HOSTILE_NAME, RUN_A, RUN_B

CHROMIUM = "/usr/bin/chromium"
_CARD = re.compile(r'<figure class="card" data-source="(\w+)">.*?</figure>', re.S)


@pytest.fixture(scope="module")
def page(report_output, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("html") / "report.html"
    stats = html_report.build_report(report_output["output"], str(path))
    assert stats.gallery == 5 and stats.sharp_samples == 4
    return path.read_text(encoding="utf-8")


def _cards(text: str) -> list[tuple[str, str]]:
    """(data-source, card html) of each gallery card, in page order."""
    return [(match.group(1), match.group(0)) for match in _CARD.finditer(text)]


def _card_uri(card: str) -> str:
    return html.unescape(re.search(r'class="name" title="([^"]+)"', card).group(1))


def _card_image(card: str) -> np.ndarray:
    encoded = re.search(r'src="data:image/jpeg;base64,([^"]+)"', card).group(1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def test_page_is_one_self_contained_file(page) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert sources and all(source.startswith("data:image/jpeg;base64,") for source in sources)
    # The only URL is the SVG namespace, which is a name, never fetched.
    assert set(re.findall(r"https?://[^\s\"')]+", page)) == {"http://www.w3.org/2000/svg"}


def test_page_shows_counts_runs_charts_and_grouped_errors(page) -> None:
    assert RUN_A in page and RUN_B in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 2
    assert "threshold 0.5" in page
    errors = page[page.index("<h2>Errors"):]
    assert "empty_file" in errors and "not_an_image" in errors
    assert "empty_b.jpg" in errors and "page.jpg" in errors


def test_gallery_lists_the_most_blurry_images_first(page) -> None:
    cards = _cards(page)
    assert len(cards) == 5
    probabilities = [float(re.search(r"P\(blur\) ([0-9.]+)", card).group(1)) for _, card in cards]
    assert probabilities == sorted(probabilities, reverse=True)
    # The half-blurred image is the least blurry of the five.
    assert "half.png" in cards[-1][1]


def test_overlays_are_rendered_from_readable_images_and_masks_alone_otherwise(page) -> None:
    sources = {_card_uri(card): source for source, card in _cards(page)}
    deleted = next(uri for uri in sources if uri.endswith("deleted.png"))
    assert sources.pop(deleted) == images.SOURCE_MASK_ONLY
    assert set(sources.values()) == {images.SOURCE_RENDERED}
    half = next(card for _, card in _cards(page) if "half.png" in card)
    pixels = _card_image(half)
    redness = pixels[..., 0].astype(float) - pixels[..., 1:].mean(axis=-1)
    width = pixels.shape[1]
    left, right = redness[:, : width // 2 - 8].mean(), redness[:, width // 2 + 8:].mean()
    # Left half blurred: tinted red; the sharp right half keeps its (grey on average) colours.
    assert left > 60 and right < 30, (left, right)


def test_file_names_are_escaped(page) -> None:
    assert HOSTILE_NAME not in page and "<img src=x" not in page
    assert html.escape(HOSTILE_NAME, quote=True) in page


def test_overlay_files_are_preferred_when_the_output_names_them(report_output,
                                                                 tmp_path) -> None:
    output = tmp_path / "out"
    shutil.copytree(report_output["output"], output)
    blue = overlays.encode_overlay_jpeg(np.full((30, 40, 3), (20, 40, 220), np.uint8))
    green = overlays.encode_overlay_jpeg(np.full((30, 40, 3), (20, 200, 40), np.uint8))
    # Run B as if written with --overlays: overlay_uri names the hostile image's overlay.
    # Run A's rows name none; its overlays sit in a folder, named by image hash.
    path = next((output / "results" / f"run_id={RUN_B}").glob("*.parquet"))
    rows = pq.read_table(path)
    hostile_row = rows.column("image_uri").to_pylist().index(report_output["paths"]["hostile"])
    (tmp_path / "overlay.jpg").write_bytes(blue)
    uris = [str(tmp_path / "overlay.jpg") if i == hostile_row else None
            for i in range(rows.num_rows)]
    pq.write_table(rows.set_column(rows.schema.get_field_index("overlay_uri"), "overlay_uri",
                                   pa.array(uris, pa.string())), path)
    folder = tmp_path / "overlays"
    folder.mkdir()
    blurred_0 = tables.read_output(str(output), RUN_A).results.to_pylist()
    sha = next(row["image_sha256"] for row in blurred_0
               if row["image_uri"].endswith("blurred_0.jpg"))
    (folder / overlays.overlay_name(sha)).write_bytes(green)

    html_path = tmp_path / "report.html"
    html_report.build_report(str(output), str(html_path), overlays_dir=str(folder))
    cards = _cards(html_path.read_text(encoding="utf-8"))
    by_name = {_card_uri(card): (source, card) for source, card in cards}
    source, card = by_name[report_output["paths"]["hostile"]]
    assert source == images.SOURCE_OVERLAY_FILE
    assert np.abs(_card_image(card).mean(axis=(0, 1)) - (20, 40, 220)).max() < 12
    source, card = next(value for uri, value in by_name.items() if uri.endswith("blurred_0.jpg"))
    assert source == images.SOURCE_OVERLAYS_DIR
    assert np.abs(_card_image(card).mean(axis=(0, 1)) - (20, 200, 40)).max() < 12


def test_cli_writes_the_page_for_one_run_and_reports_what_it_holds(report_output,
                                                                    tmp_path) -> None:
    html_path = tmp_path / "sub" / "run_b.html"
    result = CliRunner().invoke(report, [report_output["output"], "--html", str(html_path),
                                         "--top", "1", "--run-id", RUN_B])
    assert result.exit_code == 0, result.output
    assert f"wrote {html_path}" in result.output
    assert "gallery 1 (1 overlay rendered" in result.output
    text = html_path.read_text(encoding="utf-8")
    assert len(_cards(text)) == 1 and RUN_B in text and RUN_A not in text
    result = CliRunner().invoke(report, [str(tmp_path / "nowhere"), "--html", str(html_path)])
    assert result.exit_code != 0 and "does not exist" in result.output


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason="needs Debian's chromium at /usr/bin/chromium "
                           "(apt-get install -y chromium) to render the page")
def test_page_renders_in_headless_chromium(report_output, page, tmp_path) -> None:
    html_path = tmp_path / "report.html"
    html_path.write_text(page, encoding="utf-8")
    screenshot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={screenshot}", "--window-size=1280,2000", html_path.as_uri()],
        check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    # Not blank: plenty of contrast and many colours (header, cards, charts, thumbnails).
    assert pixels.std() > 30
    assert len(np.unique(pixels.reshape(-1, 3) // 16, axis=0)) > 200
    # The dark header band is drawn at the top, and the red of overlays and bars shows.
    assert pixels[:40].mean() < 60
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    assert red.sum() > 2000
