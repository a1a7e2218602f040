"""One self-contained HTML page about an output folder: open it from disk, no server.

Inline CSS, inline SVG charts, images as ``data:`` URIs, no scripts and no external requests,
so the file can be mailed, attached to a ticket or archived next to the Parquet tables.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import os
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import sbdn_pipeline
from sbdn_pipeline import atomic, inputs, schemas
from sbdn_pipeline.report import charts, images, summary, tables

DEFAULT_TOP = 24
DEFAULT_SHARP_SAMPLES = 12
MAX_TOP = 500
GALLERY_LONG_SIDE = 400
SHARP_LONG_SIDE = 240

SHARP_COLOUR = "#2a9d8f"
BLURRY_COLOUR = "#d62839"
ERROR_COLOUR = "#e9a23b"


@dataclasses.dataclass(frozen=True)
class ReportStats:
    """What went into a report (for the CLI's one-line confirmation and for tests)."""

    path: str
    size_bytes: int
    gallery: int
    sharp_samples: int
    gallery_sources: dict[str, int]


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100.0 * value:.{digits}f}%"


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _base_name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1] or uri


CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f3f4f6; --card:#ffffff;
  --sharp:%(sharp)s; --blurry:%(blurry)s; --error:%(error)s; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "DejaVu Sans",
  "Helvetica Neue", Arial, sans-serif; }
header { background:#111827; color:#f9fafb; padding:28px 40px 24px; }
header h1 { margin:0 0 6px; font-size:24px; font-weight:650; letter-spacing:-0.01em; }
header h1 span { color:#f87171; }
header .meta { color:#9ca3af; font-size:13px; }
header .meta code { color:#e5e7eb; background:#1f2937; padding:1px 6px; border-radius:4px; }
main { max-width:1240px; margin:0 auto; padding:24px 40px 48px; }
section { margin-top:28px; }
h2 { font-size:17px; margin:0 0 12px; font-weight:650; }
h2 small { color:var(--muted); font-weight:400; font-size:13px; margin-left:8px; }
.kpis { display:grid; grid-template-columns:repeat(6, 1fr); gap:12px; margin-top:-44px; }
.kpi { background:var(--card); border-radius:10px; padding:14px 16px;
  box-shadow:0 1px 2px rgba(0,0,0,.06), 0 4px 12px rgba(0,0,0,.05); border-top:4px solid #9ca3af; }
.kpi .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
.kpi .value { font-size:26px; font-weight:700; margin-top:2px; font-variant-numeric:tabular-nums; }
.kpi .sub { color:var(--muted); font-size:12px; }
.kpi.sharp { border-top-color:var(--sharp); } .kpi.blurry { border-top-color:var(--blurry); }
.kpi.error { border-top-color:var(--error); } .kpi.rate { border-top-color:#6366f1; }
.panel { background:var(--card); border-radius:10px; padding:16px 18px;
  box-shadow:0 1px 2px rgba(0,0,0,.06); }
.charts { display:grid; grid-template-columns:1fr 1fr; gap:16px; }
.chart { width:100%%; height:auto; display:block; }
.panel h3 { margin:0 0 4px; font-size:14px; }
.panel .note { color:var(--muted); font-size:12px; margin:0 0 6px; }
table { width:100%%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:8px 10px; border-bottom:1px solid var(--line);
  vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase;
  letter-spacing:.04em; }
td.num, th.num { text-align:right; }
tr:last-child td { border-bottom:none; }
.bar { display:flex; height:10px; border-radius:5px; overflow:hidden; min-width:140px;
  background:var(--line); margin-top:4px; }
.bar span { display:block; height:100%%; }
.mono { font-family:ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo, monospace;
  font-size:12px; }
.nowrap { white-space:nowrap; }
td.model { word-break:break-all; color:var(--muted); }
.gallery { display:grid; grid-template-columns:repeat(auto-fill, minmax(270px, 1fr)); gap:14px; }
.card { margin:0; background:var(--card); border-radius:10px; overflow:hidden;
  box-shadow:0 1px 2px rgba(0,0,0,.06), 0 4px 12px rgba(0,0,0,.04); }
.thumb { position:relative; background:#1f2937; aspect-ratio:4/3; display:flex;
  align-items:center; justify-content:center; }
.thumb img { width:100%%; height:100%%; object-fit:contain; display:block; }
.thumb .rank { position:absolute; top:8px; left:8px; background:rgba(17,24,39,.82); color:#fff;
  font-size:12px; font-weight:600; padding:2px 8px; border-radius:10px; }
.thumb .missing { color:#9ca3af; font-size:12px; }
figcaption { padding:10px 12px 12px; }
.name { font-weight:600; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.pills { display:flex; flex-wrap:wrap; gap:6px; margin-top:6px; }
.pill { font-size:12px; padding:1px 8px; border-radius:10px; background:#f3f4f6; color:#374151;
  font-variant-numeric:tabular-nums; }
.pill.blurry { background:#fde8ea; color:#a61b2b; }
.pill.sharp { background:#e0f2ef; color:#1d6f65; }
.source { color:var(--muted); font-size:11.5px; margin-top:6px; }
.sharp-grid { grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); }
.legend { display:flex; gap:18px; color:var(--muted); font-size:12.5px; margin:-4px 0 12px; }
.swatch { display:inline-block; width:12px; height:12px; border-radius:3px;
  vertical-align:-2px; margin-right:5px; }
.empty { color:var(--muted); font-style:italic; }
.examples { margin:0; padding-left:16px; }
.examples li { word-break:break-all; }
footer { color:var(--muted); font-size:12px; margin-top:36px; border-top:1px solid var(--line);
  padding-top:14px; }
footer code { background:#e5e7eb; padding:1px 5px; border-radius:4px; }
@media (max-width: 900px) { .kpis { grid-template-columns:repeat(3, 1fr); }
  .charts { grid-template-columns:1fr; } }
""" % {"sharp": SHARP_COLOUR, "blurry": BLURRY_COLOUR, "error": ERROR_COLOUR}


def _kpis(overall: summary.OutputSummary) -> str:
    counts = overall.counts
    median = overall.area_quantiles["p50"] if overall.area_quantiles else None

    def card(css: str, label: str, value: str, sub: str) -> str:
        return (f'<div class="kpi {css}"><div class="label">{_esc(label)}</div>'
                f'<div class="value">{_esc(value)}</div><div class="sub">{_esc(sub)}</div></div>')

    def share(part: int) -> str:
        return f"{_percent(part / counts.images if counts.images else None)} of images"

    return '<div class="kpis">' + "".join([
        card("", "Images", f"{counts.images:,}", f"{len(overall.runs)} run(s)"),
        card("sharp", "Sharp", f"{counts.sharp:,}", share(counts.sharp)),
        card("blurry", "Blurry", f"{counts.blurry:,}", share(counts.blurry)),
        card("error", "Errors", f"{counts.errors:,}", share(counts.errors)),
        card("rate", "Blur rate", _percent(counts.blur_rate), "blurry / classified"),
        card("", "Median area", _percent(median, 0), "blurred, of blurry images"),
    ]) + "</div>"


def _composition_bar(counts: summary.Counts) -> str:
    if not counts.images:
        return '<div class="bar"></div>'
    parts = [(counts.sharp, SHARP_COLOUR, "sharp"), (counts.blurry, BLURRY_COLOUR, "blurry"),
             (counts.errors, ERROR_COLOUR, "errors")]
    spans = "".join(
        f'<span style="width:{100.0 * n / counts.images:.2f}%;background:{colour}" '
        f'title="{n:,} {label}"></span>' for n, colour, label in parts if n)
    return f'<div class="bar">{spans}</div>'


def _runs_table(runs: list[summary.RunSummary]) -> str:
    rows = []
    for run in runs:
        c = run.counts
        started = f"{run.started_at:%Y-%m-%d %H:%M}" if run.started_at else "-"
        models = ", ".join(run.classifier_models) or "-"
        thresholds = ", ".join(f"{t:g}" for t in run.blur_thresholds) or "-"
        rows.append(
            f'<tr><td class="mono nowrap">{_esc(run.run_id)}</td>'
            f'<td class="nowrap">{_esc(started)}</td>'
            f'<td class="num">{c.images:,}</td><td class="num">{c.sharp:,}</td>'
            f'<td class="num">{c.blurry:,}</td><td class="num">{c.errors:,}</td>'
            f'<td class="num">{_percent(c.blur_rate)}</td><td>{_composition_bar(c)}</td>'
            f'<td class="mono model">{_esc(models)}<br>blur threshold {_esc(thresholds)}</td></tr>')
    return ('<div class="panel"><table><thead><tr><th>Run</th><th>Started (UTC)</th>'
            '<th class="num">Images</th><th class="num">Sharp</th><th class="num">Blurry</th>'
            '<th class="num">Errors</th><th class="num">Blur rate</th><th>Composition</th>'
            '<th>Classifier</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></div>")


def _charts(results: pa.Table, overall: summary.OutputSummary) -> str:
    probabilities = results.column(schemas.BLUR_PROBABILITY).to_numpy(zero_copy_only=False)
    thresholds = sorted(set(results.column(schemas.BLUR_THRESHOLD).to_pylist()))
    threshold = thresholds[0] if len(thresholds) == 1 else None
    split = threshold if threshold is not None else 0.5

    probability_chart = charts.histogram_svg(
        probabilities, bins=20, x_label="blur probability",
        colour_of_bin=lambda start, end: BLURRY_COLOUR if start >= split - 1e-9 else SHARP_COLOUR,
        tick_format=lambda v: f"{v:.2f}", marker=threshold,
        marker_label=f"threshold {threshold:g}" if threshold is not None else "")
    areas = results.column(schemas.BLUR_AREA_FRACTION).drop_null().to_numpy(zero_copy_only=False)
    area_chart = charts.histogram_svg(
        areas, bins=20, x_label="blurred share of the image",
        colour_of_bin=lambda start, end: BLURRY_COLOUR,
        tick_format=lambda v: f"{100 * v:.0f}%", unit="blurry images")
    quantiles = overall.area_quantiles
    area_note = ("p10 {p10} · median {p50} · p90 {p90}".format(
        **{k: _percent(v) for k, v in quantiles.items()}) if quantiles else "no blurry images")
    return (
        '<div class="charts">'
        f'<div class="panel"><h3>Blur probability</h3><p class="note">{len(probabilities):,} '
        f'classified images; bars at or above the threshold are called blurry</p>'
        f'{probability_chart}</div>'
        f'<div class="panel"><h3>Blurred area</h3><p class="note">{_esc(area_note)}</p>'
        f'{area_chart}</div></div>')


def _gallery(output: tables.Output, results: pa.Table, top: int, overlays_dir: str | None,
             counter: dict[str, int]) -> tuple[str, int]:
    blurry = results.filter(pc.equal(results.column(schemas.IS_BLURRY), True))
    if not blurry.num_rows:
        return '<p class="empty">No image was called blurry.</p>', 0
    blurry = blurry.sort_by([(schemas.BLUR_PROBABILITY, "descending"),
                             (schemas.BLUR_AREA_FRACTION, "descending"),
                             (schemas.IMAGE_URI, "ascending")])
    cards = []
    for rank, row in enumerate(blurry.slice(0, top).to_pylist(), start=1):
        mask = images.decode_results_mask(
            output.fetch_column(row[tables.FILE_COLUMN], row[tables.ROW_COLUMN], schemas.MASK_PNG))
        picture = images.gallery_picture(row, mask, GALLERY_LONG_SIDE, overlays_dir)
        counter[picture.source] = counter.get(picture.source, 0) + 1
        regions = row[schemas.BLUR_REGION_COUNT] or 0
        source = images.SOURCE_DESCRIPTIONS[picture.source]
        if picture.note and picture.source == images.SOURCE_MASK_ONLY:
            source = f"mask only: {picture.note}"
        cards.append(
            f'<figure class="card" data-source="{picture.source}">'
            f'<div class="thumb"><span class="rank">#{rank}</span>'
            f'<img src="{_data_uri(picture.jpeg)}" '
            f'alt="{_esc(_base_name(row[schemas.IMAGE_URI]))}">'
            f'</div><figcaption><div class="name" title="{_esc(row[schemas.IMAGE_URI])}">'
            f'{_esc(_base_name(row[schemas.IMAGE_URI]))}</div><div class="pills">'
            f'<span class="pill blurry">P(blur) {row[schemas.BLUR_PROBABILITY]:.3f}</span>'
            f'<span class="pill">area {_percent(row[schemas.BLUR_AREA_FRACTION], 0)}</span>'
            f'<span class="pill">{_count(regions, "region")}</span>'
            f'<span class="pill">{row[schemas.WIDTH]}×{row[schemas.HEIGHT]}</span></div>'
            f'<div class="source">{_esc(source)} · run {_esc(row[schemas.RUN_ID])}</div>'
            f'</figcaption></figure>')
    return '<div class="gallery">' + "".join(cards) + "</div>", len(cards)


def _sharp_sample(results: pa.Table, size: int) -> tuple[str, int]:
    sharp = results.filter(pc.equal(results.column(schemas.IS_BLURRY), False))
    if not sharp.num_rows or size <= 0:
        return '<p class="empty">No image was called sharp.</p>', 0
    sharp = sharp.sort_by([(schemas.BLUR_PROBABILITY, "descending"),
                           (schemas.IMAGE_URI, "ascending")])
    chosen = sharp.take(pa.array(images.spread_sample(sharp.num_rows, size))).to_pylist()
    cards = []
    for row in chosen:
        jpeg = images.sharp_picture(row[schemas.IMAGE_URI], row[schemas.IMAGE_SHA256],
                                    SHARP_LONG_SIDE)
        body = (f'<img src="{_data_uri(jpeg)}" alt="{_esc(_base_name(row[schemas.IMAGE_URI]))}">'
                if jpeg else '<span class="missing">image not readable here</span>')
        cards.append(
            f'<figure class="card"><div class="thumb">{body}</div><figcaption>'
            f'<div class="name" title="{_esc(row[schemas.IMAGE_URI])}">'
            f'{_esc(_base_name(row[schemas.IMAGE_URI]))}</div><div class="pills">'
            f'<span class="pill sharp">P(blur) {row[schemas.BLUR_PROBABILITY]:.3f}</span>'
            f'</div></figcaption></figure>')
    return '<div class="gallery sharp-grid">' + "".join(cards) + "</div>", len(cards)


def _errors_table(reasons: list[summary.ErrorReason], total: int) -> str:
    if not reasons:
        return '<p class="empty">Every image could be read and classified.</p>'
    rows = []
    for reason in reasons:
        examples = "".join(f'<li class="mono">{_esc(uri)}</li>' for uri in reason.example_uris)
        rows.append(
            f'<tr><td class="nowrap"><span class="swatch" style="background:{ERROR_COLOUR}">'
            f'</span><b>{_esc(reason.error_type)}</b></td>'
            f'<td>{_esc(", ".join(reason.stages))}</td>'
            f'<td class="num">{reason.count:,}</td>'
            f'<td class="num">{_percent(reason.count / total if total else None)}</td>'
            f'<td>{_esc(reason.example_message)}</td><td><ul class="examples">{examples}</ul>'
            f'</td></tr>')
    return ('<div class="panel"><table><thead><tr><th>Reason</th><th>Stage</th>'
            '<th class="num">Images</th><th class="num">Share</th><th>Example message</th>'
            '<th>Example images</th></tr></thead><tbody>' + "".join(rows)
            + "</tbody></table></div>")


def _legend() -> str:
    return ('<div class="legend"><span><span class="swatch" style="background:rgba(230,25,25,.6)">'
            '</span>blurred pixels (mask confidence ≥ the run\'s mask threshold)</span>'
            '<span><span class="swatch" style="background:#ffd600"></span>blurred regions</span>'
            '</div>')


def render_report(output: tables.Output, *, top: int = DEFAULT_TOP,
                  sharp_samples: int = DEFAULT_SHARP_SAMPLES, overlays_dir: str | None = None,
                  now: datetime.datetime | None = None) -> tuple[str, dict[str, Any]]:
    """The report page as a string, plus what went into it.

    Args:
        output: tables read with :func:`tables.read_output`.
        top: how many of the most blurry images the gallery shows.
        sharp_samples: how many sharp images to show, spread over the probability range.
        overlays_dir: folder of ``<sha256>.jpg`` overlays to use when rows lack ``overlay_uri``.
        now: the time printed in the header (tests pass a fixed one).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    overall = summary.summarize(output, error_limit=None)
    results, _ = tables.latest_per_image(output.results, output.errors)
    sources: dict[str, int] = {}
    gallery, gallery_count = _gallery(output, results, top, overlays_dir, sources)
    sharp, sharp_count = _sharp_sample(results, sharp_samples)
    scope = f"run <code>{_esc(output.run_id)}</code>" if output.run_id else (
        f"{len(overall.runs)} run{'s' if len(overall.runs) != 1 else ''}")
    superseded = (f" · {overall.superseded_rows:,} older rows of re-processed images not counted"
                  if overall.superseded_rows else "")
    body = [
        f'<header><h1>sbdn <span>blur</span> report</h1><div class="meta">'
        f'Output <code>{_esc(output.output)}</code> · {scope} · generated '
        f'{now:%Y-%m-%d %H:%M} UTC{_esc(superseded)}</div></header><main>',
        _kpis(overall),
        '<section><h2>Runs</h2>' + _runs_table(overall.runs) + "</section>",
        '<section><h2>Distributions</h2>' + _charts(results, overall) + "</section>",
        f'<section><h2>Most blurry images<small>top {gallery_count:,} of '
        f'{overall.counts.blurry:,}, by blur probability</small></h2>{_legend()}{gallery}'
        "</section>",
        f'<section><h2>Sharp images<small>a sample of {sharp_count:,} of '
        f'{overall.counts.sharp:,}, spread over the probability range, highest first</small>'
        f'</h2>{sharp}</section>',
        f'<section><h2>Errors<small>{_count(overall.counts.errors, "image")}, grouped by '
        'reason</small>'
        f'</h2>{_errors_table(overall.error_reasons, overall.counts.errors)}</section>',
        f'<footer>sbdn-pipeline {_esc(sbdn_pipeline.__version__)} · each image counts once, '
        'with its latest result · query the same tables with DuckDB: <code>SELECT * FROM '
        f"read_parquet('{_esc(output.output.rstrip('/'))}/results/*/*.parquet')</code></footer>"
        "</main>",
    ]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # No network, no scripts: the page must work from a file, offline, in any viewer.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">"
            f"<title>sbdn blur report: {_esc(output.output)}</title><style>{CSS}</style>"
            "</head><body>" + "".join(body) + "</body></html>\n")
    return page, {"gallery": gallery_count, "sharp_samples": sharp_count,
                  "gallery_sources": sources}


def write_text(path: str, text: str) -> None:
    """Write a UTF-8 file locally (creating folders) or to a gs:// / s3:// URI."""
    if not inputs.is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic.write_text(path, text, mime_type="text/html")  # readers never see half a report


def build_report(
    output: str,
    html_path: str,
    *,
    top: int = DEFAULT_TOP,
    sharp_samples: int = DEFAULT_SHARP_SAMPLES,
    overlays_dir: str | None = None,
    run_id: str | None = None,
) -> ReportStats:
    """Read an output folder and write its HTML report.

    Args:
        output: the folder given to ``sbdn detect --output``.
        html_path: where to write the page (local path or URI).
        top: size of the gallery of the most blurry images (at most MAX_TOP).
        sharp_samples: number of sharp images shown.
        overlays_dir: folder of ``<sha256>.jpg`` overlays, if the rows lack ``overlay_uri``.
        run_id: report on this run only; None reports on every run.

    Raises:
        tables.OutputError: no sbdn output in the folder, or no such run.
        ValueError: ``top`` outside 0..MAX_TOP.
    """
    if not 0 <= top <= MAX_TOP:
        raise ValueError(f"top must be between 0 and {MAX_TOP}, got {top}")
    data = tables.read_output(output, run_id)
    page, info = render_report(data, top=top, sharp_samples=sharp_samples,
                               overlays_dir=overlays_dir)
    write_text(html_path, page)
    return ReportStats(path=html_path, size_bytes=len(page.encode("utf-8")), **info)


def describe_sources(sources: dict[str, int]) -> Iterable[str]:
    """Human phrases for the gallery picture sources, most used first."""
    for source, count in sorted(sources.items(), key=lambda item: -item[1]):
        yield f"{count} {images.SOURCE_DESCRIPTIONS[source].split(':')[0]}"
