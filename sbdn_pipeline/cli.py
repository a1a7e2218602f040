"""The `sbdn` command line: a thin layer that validates arguments and calls the jobs."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

import click

import sbdn_pipeline  # noqa: F401 - quiets TF and Beam start-up noise before they are imported
from sbdn_pipeline.model_cli import tile_options

EPILOG_DETECT = """\b
Examples:
  sbdn detect photos/ --output out/
  sbdn detect 'photos/**/*.jpg' --output out/ --blur-threshold 0.7
  sbdn detect uris.txt --output out/ --direct_num_workers=2 --direct_running_mode=multi_processing
  sbdn detect gs://bucket/photos/ --output gs://bucket/sbdn/ --runner DataflowRunner \\
      --project P --region europe-west1 --temp_location gs://bucket/tmp \\
      --sdk_container_image IMAGE

\b
Output: OUT/results/run_id=RUN/*.parquet (one row per classified image) and
OUT/errors/run_id=RUN/*.parquet (one row per image that could not be processed).
Every input appears in exactly one of them. Any option not listed above is passed to
Apache Beam (--runner, --direct_num_workers, --project, --region, ...).
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sbdn-pipeline")
def cli() -> None:
    """sbdn: find blurry images in large photo collections and say where the blur is.

    \b
    A classifier gives every image a blur probability; for images it calls blurry an
    identifier predicts a per-pixel blur mask. Results go to Parquet tables that DuckDB,
    pandas, Spark and BigQuery read with one glob.

    \b
    Example:
      sbdn detect photos/ --output out/
      duckdb -c "SELECT image_uri, blur_probability FROM 'out/results/*/*.parquet'
                 WHERE is_blurry ORDER BY blur_probability DESC LIMIT 10"
    """


PROGRESS_INTERVAL_S = 10.0


def _fail(message: str) -> None:
    """One-line error, non-zero exit, before any work starts."""
    raise click.ClickException(message)


def _check_output(output: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    from sbdn_pipeline import inputs, schemas

    if inputs.is_remote(output):
        if FileSystems.exists(output.rstrip("/") + "/") and not FileSystems.exists(
            FileSystems.join(output, schemas.OUTPUT_MARKER)
        ):
            listing = FileSystems.match([FileSystems.join(output, "*")], limits=[1])[0]
            if listing.metadata_list:
                _fail(f"output '{output}' exists and is not an sbdn output folder")
        return
    if os.path.exists(output) and not os.path.isdir(output):
        _fail(f"output '{output}' exists and is not a folder")
    if os.path.isdir(output) and os.listdir(output):
        if not os.path.exists(os.path.join(output, schemas.OUTPUT_MARKER)):
            _fail(
                f"output '{output}' exists, is not empty and is not an sbdn output folder "
                f"(no {schemas.OUTPUT_MARKER}); choose a new or empty folder"
            )


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog=EPILOG_DETECT,
)
@click.argument("input_spec", metavar="INPUT")
@click.option("--output", "-o", required=True,
              help="Output folder (local or gs://, s3://). Created if missing; may hold earlier "
                   "runs of sbdn, each in its own run_id=... folder.")
@click.option("--classifier", "classifier_path", default=None, metavar="PATH",
              help="Classifier .keras file. Default: the classifier shipped in models/.")
@click.option("--identifier", "identifier_path", default=None, metavar="PATH",
              help="Identifier .keras file. Default: the identifier shipped in models/.")
@click.option("--blur-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="An image is blurry when its blur probability is at least this.")
@click.option("--mask-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="A mask pixel counts as blurred when its confidence is at least this.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Images per model call.")
@click.option("--max-pixels", type=click.IntRange(1), default=100_000_000, show_default=True,
              help="Reject images with more pixels than this (checked on the header, before "
                   "decoding: protects against decompression bombs).")
@click.option("--run-id", default="", metavar="ID",
              help="Name of this run (output folder run_id=ID; letters, digits, . _ -). "
                   "Default: UTC time + random suffix.")
@click.option("--skip-existing", is_flag=True,
              help="Incremental run: skip images already in OUT (same URI, size and "
                   "modification time in an earlier run's results or errors). New and changed "
                   "files are processed.")
@click.option("--retry-errors", is_flag=True,
              help="With --skip-existing: process images that earlier runs could not again.")
@click.option("--max-error-fraction", type=click.FloatRange(0, 1), default=0.5,
              show_default=True,
              help="Fail (exit 3, after writing everything) when more than this fraction of "
                   "the processed images end in the errors table: the input is probably wrong.")
@click.option("--overlays", "overlays_dir", default="", metavar="DIR",
              help="Also write, for each blurry image, a JPEG of the photo with blurred pixels "
                   "tinted red and regions boxed, named <image sha256>.jpg (results column "
                   "overlay_uri).")
@tile_options
@click.pass_context
def detect(
    ctx: click.Context,
    input_spec: str,
    output: str,
    classifier_path: str | None,
    identifier_path: str | None,
    blur_threshold: float,
    mask_threshold: float,
    batch_size: int,
    max_pixels: int,
    run_id: str,
    skip_existing: bool,
    retry_errors: bool,
    max_error_fraction: float,
    overlays_dir: str,
    classifier_tiles: int,
    tile_pooling: str,
    identifier_tiles: int,
) -> None:
    """Classify every image in INPUT as blurry or sharp; segment the blur in blurry ones.

    INPUT is a folder (searched recursively), a glob, a text file listing one image URI per
    line (.txt/.lst/.list), a single image, or a gs:// / s3:// path.
    """
    from beam_jobs import detect as detect_job
    from sbdn_pipeline import default_models, inputs, inference
    from sbdn_pipeline.options import (
        DetectOptions,
        is_local_runner,
        make_pipeline_options,
        with_local_parallelism,
    )

    beam_args = list(ctx.args)
    if retry_errors and not skip_existing:
        _fail("--retry-errors only makes sense with --skip-existing")
    try:
        inputs.check_input(input_spec, exclude=None if inputs.is_remote(output) else output)
    except inputs.InputError as exc:
        _fail(str(exc))
    _check_output(output)

    models = {}
    for role, path in (("classifier", classifier_path), ("identifier", identifier_path)):
        expected_sha256 = ""
        if path is None:
            try:
                path, expected_sha256 = default_models.default_model(role)
            except default_models.NoDefaultModelError as exc:
                _fail(str(exc))
        try:
            models[role] = inference.inspect_model(path, role, expected_sha256)
        except inference.ModelFileError as exc:
            _fail(f"{role}: {exc}")
        if expected_sha256:
            models[role] = dataclasses.replace(models[role], shipped=True)

    try:
        options = DetectOptions(
            input=input_spec,
            output=output,
            classifier_path=models["classifier"].path,
            identifier_path=models["identifier"].path,
            blur_threshold=blur_threshold,
            mask_threshold=mask_threshold,
            batch_size=batch_size,
            max_pixels=max_pixels,
            run_id=run_id,
            skip_existing=skip_existing,
            retry_errors=retry_errors,
            max_error_fraction=max_error_fraction,
            overlays_dir=overlays_dir,
            classifier_tiles=classifier_tiles,
            tile_pooling=tile_pooling,
            identifier_tiles=identifier_tiles,
        )
    except ValueError as exc:
        _fail(str(exc))
    pipeline_options = make_pipeline_options(with_local_parallelism(beam_args))
    click.echo(
        f"sbdn detect: {input_spec} -> {output}\n"
        f"  classifier {models['classifier'].model_id} (input {models['classifier'].input_size} px)\n"
        f"  identifier {models['identifier'].model_id} (input {models['identifier'].input_size} px)",
        err=True,
    )
    progress_total = progress_interval = None
    if is_local_runner(pipeline_options):
        progress_interval = PROGRESS_INTERVAL_S
        if not inputs.is_remote(input_spec):
            # Listing a local collection is cheap next to classifying it; it gives the ETA.
            progress_total = sum(1 for _ in inputs.list_input(input_spec, output))
    summary = detect_job.run(options, models["classifier"], models["identifier"],
                             pipeline_options, progress_total, progress_interval)
    rate = summary.matched / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
    skipped = f"skipped {summary.skipped} + " if skip_existing else ""
    click.echo(
        f"run {summary.run_id}: matched {summary.matched} = {skipped}sharp {summary.sharp} + "
        f"blurry {summary.blurry} + errors {summary.errors} "
        f"({summary.wall_seconds:.1f} s, {rate:.1f} images/s)"
    )
    click.echo(f"results: {os.path.join(output, 'results', 'run_id=' + summary.run_id)}")
    click.echo(f"errors:  {os.path.join(output, 'errors', 'run_id=' + summary.run_id)}")
    if not summary.reconciled:
        _fail("counts do not add up: some images are missing from both tables (a bug; "
              "please report it with this output)")
    if summary.error_fraction > max_error_fraction:
        click.echo(
            f"Error: {summary.error_fraction:.0%} of the processed images failed (limit "
            f"{max_error_fraction:.0%}); is INPUT the right folder/bucket? Top reasons are in "
            f"the errors table; everything was written.",
            err=True,
        )
        ctx.exit(3)


from sbdn_pipeline.dataset_cli import make_dataset_command, show_dataset_command  # noqa: E402

cli.add_command(make_dataset_command)
cli.add_command(show_dataset_command)

from sbdn_pipeline.model_cli import evaluate_command, train_command  # noqa: E402

cli.add_command(train_command)
cli.add_command(evaluate_command)

from sbdn_pipeline.report_cli import report, summarize  # noqa: E402

cli.add_command(report)
cli.add_command(summarize)


@cli.command()
@click.option("--workdir", default="sbdn-demo", show_default=True,
              help="Folder for the demo photos (photos/) and the detect output (out/).")
@click.pass_context
def demo(ctx: click.Context, workdir: str) -> None:
    """Run the detect job with the shipped models on a small corpus of real photos.

    \b
    The corpus is derived at run time from the photos bundled inside scikit-image (nothing is
    downloaded); a few are blurred on purpose and one file is broken, so both model branches
    and the errors table show up. Needs the [demo] extra.

    \b
    Example:
      sbdn demo --workdir /tmp/sbdn-demo
    """
    import glob

    import pyarrow.parquet as pq

    from sbdn_pipeline import demo as demo_corpus

    photos = os.path.join(workdir, "photos")
    output = os.path.join(workdir, "out")
    try:
        written = demo_corpus.write_demo_corpus(photos)
    except RuntimeError as exc:
        _fail(str(exc))
    click.echo(f"demo corpus: {len(written)} files in {photos}", err=True)
    run_id = f"demo-{os.getpid()}"
    ctx.invoke(detect, input_spec=photos, output=output, run_id=run_id,
               overlays_dir=os.path.join(workdir, "overlays"))
    results = {}
    for path in glob.glob(os.path.join(output, "results", f"run_id={run_id}", "*.parquet")):
        for row in pq.read_table(path).to_pylist():
            results[os.path.basename(row["image_uri"])] = row
    click.echo(f"\n{'file':28} {'P(blurry)':>9} {'verdict':8} {'blurred area':>12}  what it is")
    for item in written:
        row = results.get(item.file_name)
        if row is None:
            click.echo(f"{item.file_name:28} {'-':>9} {'error':8} {'-':>12}  {item.treatment}")
            continue
        verdict = "blurry" if row["is_blurry"] else "sharp"
        area = row["blur_area_fraction"]
        area_text = f"{area:.0%}" if area is not None else "-"
        click.echo(f"{item.file_name:28} {row['blur_probability']:9.3f} {verdict:8} "
                   f"{area_text:>12}  {item.treatment}")


@cli.command("ship-model")
@click.argument("model_path", metavar="MODEL.keras")
@click.option("--role", type=click.Choice(["classifier", "identifier"]), required=True,
              help="Which default it becomes.")
@click.option("--models-dir", default=None, metavar="DIR",
              help="Models folder (default: the one `sbdn detect` uses).")
def ship_model(model_path: str, role: str, models_dir: str | None) -> None:
    """Make a trained model the default classifier or identifier.

    Checks that the model loads (safe mode) and fits the role, copies it to
    models/<role>.keras and records its sha256 in models/manifest.json, which
    `sbdn detect` verifies before loading. Update the model card (models/README.md) too.

    \b
    Example:
      sbdn ship-model runs/classifier/model.keras --role classifier
    """
    from sbdn_pipeline import default_models, inference

    try:
        info = inference.inspect_model(model_path, role)
    except inference.ModelFileError as exc:
        _fail(str(exc))
    entry = default_models.ship_model(model_path, role, models_dir)
    click.echo(f"shipped {role}: {entry['file']} sha256 {entry['sha256']} "
               f"(input {info.input_size} px)")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli(prog_name="sbdn")


if __name__ == "__main__":
    sys.exit(main())
