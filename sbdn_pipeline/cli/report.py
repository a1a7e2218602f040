"""The `sbdn report` and `sbdn summarize` commands: look at an output folder."""

from __future__ import annotations

import json

import click

EPILOG_REPORT = """\b
Examples:
  sbdn report out/ --html report.html
  sbdn report out/ --html report.html --top 100 --run-id 20261125T175222Z-86b505
  sbdn report gs://bucket/sbdn/ --html report.html --overlays gs://bucket/sbdn-overlays/

\b
The page is one file with everything inline (styles, charts, images as data: URIs):
open it in a browser straight from disk, mail it, or archive it. Gallery pictures come
from the row's overlay_uri, else --overlays DIR/<image_sha256>.jpg, else are rendered
now from the original image and its mask, else show the mask alone.
"""

EPILOG_SUMMARIZE = """\b
Examples:
  sbdn summarize out/
  sbdn summarize out/ --json | jq .blur_rate
  sbdn summarize gs://bucket/sbdn/ --run-id 20261125T175222Z-86b505

\b
Totals count each image once, with its latest result over the runs read; the blur rate
is blurry / (sharp + blurry). The runs section counts what each run wrote.
"""


@click.command(epilog=EPILOG_REPORT)
@click.argument("output", metavar="OUT")
@click.option("--html", "html_path", required=True, metavar="FILE",
              help="Where to write the HTML page (local path or gs:// / s3:// URI).")
@click.option("--top", type=click.IntRange(0, 500), default=24, show_default=True,
              help="How many of the most blurry images the gallery shows.")
@click.option("--sharp-samples", type=click.IntRange(0, 200), default=12, show_default=True,
              help="How many sharp images to show (spread over the probability range).")
@click.option("--overlays", "overlays_dir", default=None, metavar="DIR",
              help="Folder of overlays named <image_sha256>.jpg (as written by "
                   "'sbdn detect --overlays DIR'), used when rows have no overlay_uri.")
@click.option("--run-id", default=None, metavar="ID", help="Report on this run only.")
def report(output: str, html_path: str, top: int, sharp_samples: int,
           overlays_dir: str | None, run_id: str | None) -> None:
    """Write one self-contained HTML page about the detect output in OUT.

    Counts and blur rate per run, histograms of blur probability and blurred area, a
    gallery of the most blurry images with their blur overlays, a sample of sharp images,
    and the errors grouped by reason.
    """
    from sbdn_pipeline.report import html_report, tables

    try:
        stats = html_report.build_report(output, html_path, top=top,
                                         sharp_samples=sharp_samples,
                                         overlays_dir=overlays_dir, run_id=run_id)
    except tables.OutputError as exc:
        raise click.ClickException(str(exc)) from exc
    sources = ", ".join(html_report.describe_sources(stats.gallery_sources)) or "none"
    click.echo(f"wrote {stats.path} ({stats.size_bytes / 1024:.0f} KiB): "
               f"gallery {stats.gallery} ({sources}), sharp samples {stats.sharp_samples}")


@click.command(epilog=EPILOG_SUMMARIZE)
@click.argument("output", metavar="OUT")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--run-id", default=None, metavar="ID", help="Summarize this run only.")
@click.option("--top-errors", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many error reasons to list.")
def summarize(output: str, as_json: bool, run_id: str | None, top_errors: int) -> None:
    """Print counts, blur rate, blurred-area quantiles and top error reasons of OUT."""
    from sbdn_pipeline.report import summary, tables

    try:
        data = tables.read_output(output, run_id)
    except tables.OutputError as exc:
        raise click.ClickException(str(exc)) from exc
    result = summary.summarize(data, error_limit=top_errors)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(summary.format_text(result))
