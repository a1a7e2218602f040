"""`sbdn detect`: check the command line, find the models, run the detect job, print the summary."""

from __future__ import annotations

import dataclasses
import functools
import os

import click

from sbdn_pipeline.cli.args import FiniteFloatRange, option_names, split_inputs_and_beam_args
from sbdn_pipeline.cli.errors import EXIT_TOO_MANY_ERRORS, fail, usage
from sbdn_pipeline.cli.models import tile_options
from sbdn_pipeline.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BLUR_THRESHOLD,
    DEFAULT_MASK_THRESHOLD,
    DEFAULT_MAX_ERROR_FRACTION,
    DEFAULT_MAX_PIXELS,
)

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


PROGRESS_INTERVAL_S = 10.0


def _check_output(output: str, overlays_dir: str) -> None:
    from sbdn_pipeline import output_folder

    try:
        output_folder.check_output(output, overlays_dir)
    except output_folder.OutputError as exc:
        fail(str(exc))


def _check_inputs(input_specs: list[str], output: str) -> None:
    from sbdn_pipeline import inputs

    exclude = None if inputs.is_remote(output) else output
    for spec in input_specs:
        try:
            inputs.check_input(spec, exclude=exclude)
        except inputs.InputError as exc:
            usage(str(exc))


def _load_models(classifier_path: str | None, identifier_path: str | None) -> dict:
    """ModelInfo of each role: the given file, or the shipped default (sha256 checked)."""
    from sbdn_pipeline import default_models, inference

    models = {}
    for role, path in (("classifier", classifier_path), ("identifier", identifier_path)):
        expected_sha256, geometry = "", None
        if path is None:
            try:
                path, expected_sha256 = default_models.default_model(role)
                geometry = default_models.default_model_geometry(role)
            except default_models.NoDefaultModelError as exc:
                fail(str(exc))
        try:
            if geometry:  # shipped and inspected when shipped: check the hash, do not load
                sha256 = inference.verify_model_file(path, expected_sha256)
                models[role] = inference.ModelInfo(path, sha256, role, *geometry)
            else:
                models[role] = inference.inspect_model(path, role, expected_sha256)
        except inference.ModelFileError as exc:
            fail(f"{role}: {exc}")
        if expected_sha256:
            models[role] = dataclasses.replace(models[role], shipped=True)
    return models


def _count_local_inputs(input_specs: list[str], output: str, limit: int) -> int | None:
    """Distinct local inputs, counted up to ``limit`` (None when any INPUT is remote)."""
    import itertools

    from sbdn_pipeline import inputs

    if any(inputs.is_remote(spec) for spec in input_specs):
        return None
    listed = itertools.chain.from_iterable(inputs.list_input(spec, output)
                                           for spec in input_specs)
    seen = set()
    for item in itertools.islice(listed, 4 * limit):  # duplicates are rare; stop early
        seen.add(getattr(item, "uri", item))
        if len(seen) >= limit:
            break
    return len(seen)


def _progress_total(input_specs: list[str], output: str) -> int | None:
    """Distinct local inputs (cheap next to classifying them), for the ETA; None if remote."""
    from sbdn_pipeline import inputs

    if any(inputs.is_remote(spec) for spec in input_specs):
        return None
    # Listing errors are counted too: each becomes one errors row.
    return len({getattr(item, "uri", item) for spec in input_specs
                for item in inputs.list_input(spec, output)})


def _run_detect(options, models: dict, beam_args: list[str], quiet: bool, verbose: bool):
    """Run the job; failures during the run become one line (the trace with --verbose)."""
    from beam_jobs import detect as detect_job
    from sbdn_pipeline import output_folder
    from sbdn_pipeline.options import (ONE_PROCESS_MAX_IMAGES, is_local_runner,
                                       make_pipeline_options, with_local_parallelism)

    count = _count_local_inputs(list(options.input_specs), options.output,
                                ONE_PROCESS_MAX_IMAGES)
    pipeline_options = make_pipeline_options(with_local_parallelism(beam_args, count))
    settings = None
    if is_local_runner(pipeline_options):
        total = None if quiet else functools.partial(
            _progress_total, list(options.input_specs), options.output)
        settings = detect_job.ProgressSettings(PROGRESS_INTERVAL_S, total, silent=quiet)
    try:
        return detect_job.run(options, models["classifier"], models["identifier"],
                              pipeline_options, settings)
    except output_folder.RunExistsError as exc:
        usage(str(exc))
    except output_folder.OutputError as exc:
        fail(str(exc))
    except (KeyboardInterrupt, click.exceptions.Exit, click.ClickException):
        raise
    except Exception as exc:  # noqa: BLE001 - one line for users; the trace with --verbose
        if verbose:
            raise
        fail(f"the run failed: {_root_cause(exc)} (run again with --verbose for details; "
              "nothing partial was published)")


def _root_cause(exc: BaseException) -> str:
    """The innermost exception, one line (Beam wraps worker errors in long messages)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]


def _print_summary(summary, output: str, skip_existing: bool, overlays_dir: str,
                   quiet: bool) -> None:
    rate = summary.matched / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
    skipped = f"skipped {summary.skipped} + " if skip_existing else ""
    if overlays_dir and summary.overlays_failed:
        click.echo(f"Warning: {summary.overlays_failed} of "
                   f"{summary.overlays_failed + summary.overlays_written} overlays could not "
                   f"be written to {overlays_dir} (full or read-only?); their rows have "
                   "overlay_uri NULL", err=True)
    if quiet:
        return
    click.echo(
        f"run {summary.run_id}: matched {summary.matched} = {skipped}sharp {summary.sharp} + "
        f"blurry {summary.blurry} + errors {summary.errors} "
        f"({summary.wall_seconds:.1f} s, {rate:.1f} images/s)"
    )
    click.echo(f"results: {os.path.join(output, 'results', 'run_id=' + summary.run_id)}")
    click.echo(f"errors:  {os.path.join(output, 'errors', 'run_id=' + summary.run_id)}")


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog=EPILOG_DETECT,
)
@click.argument("arguments", nargs=-1, metavar="INPUT...", type=click.UNPROCESSED)
@click.option("--output", "-o", required=True,
              help="Output folder (local or gs://, s3://). Created if missing; may hold earlier "
                   "runs of sbdn, each in its own run_id=... folder.")
@click.option("--classifier", "classifier_path", default=None, metavar="PATH",
              help="Classifier .keras file. Default: the classifier shipped in models/.")
@click.option("--identifier", "identifier_path", default=None, metavar="PATH",
              help="Identifier .keras file. Default: the identifier shipped in models/.")
@click.option("--blur-threshold", type=FiniteFloatRange(0, 1),
              default=DEFAULT_BLUR_THRESHOLD, show_default=True,
              help="An image is blurry when its blur probability is at least this.")
@click.option("--mask-threshold", type=FiniteFloatRange(0, 1),
              default=DEFAULT_MASK_THRESHOLD, show_default=True,
              help="A mask pixel counts as blurred when its confidence is at least this.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=DEFAULT_BATCH_SIZE,
              show_default=True, help="Images per model call.")
@click.option("--max-pixels", type=click.IntRange(1), default=DEFAULT_MAX_PIXELS,
              show_default=True,
              help="Reject images with more pixels than this (checked on the header, before "
                   "decoding: protects against decompression bombs).")
@click.option("--run-id", default="", metavar="ID",
              help="Name of this run (output folder run_id=ID; letters, digits, . _ -). "
                   "Default: UTC time + random suffix. An existing run is never replaced "
                   "unless --overwrite-run is given.")
@click.option("--overwrite-run", is_flag=True,
              help="Replace the run of the same --run-id in OUT (its images are processed "
                   "again, also with --skip-existing; the old files go when the new ones "
                   "are published).")
@click.option("--skip-existing", is_flag=True,
              help="Incremental run: skip images already in OUT (same URI, size and "
                   "modification time in an earlier run's results or errors). New and changed "
                   "files are processed.")
@click.option("--retry-errors", is_flag=True,
              help="With --skip-existing: process images that earlier runs could not again.")
@click.option("--max-error-fraction", type=FiniteFloatRange(0, 1),
              default=DEFAULT_MAX_ERROR_FRACTION, show_default=True,
              help="Fail (exit 3, after writing everything) when more than this fraction of "
                   "the processed images end in the errors table: the input is probably wrong.")
@click.option("--overlays", "overlays_dir", default="", metavar="DIR",
              help="Also write, for each blurry image, a JPEG of the photo with blurred pixels "
                   "tinted red and regions boxed, named <image sha256>.jpg (results column "
                   "overlay_uri).")
@tile_options
@click.option("--verbose", "-v", is_flag=True,
              help="Also show Beam, TensorFlow and Google client warnings, and full "
                   "tracebacks.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print nothing but errors and warnings (for cron jobs).")
@click.option("--summary-json", default="", metavar="FILE",
              help="Also write the run's counts and timings to FILE as JSON (for schedulers, "
                   "dashboards and benchmarks).")
@click.pass_context
def detect(ctx: click.Context, arguments: tuple[str, ...], output: str, **settings) -> None:
    """Classify every image in INPUT as blurry or sharp; segment the blur in blurry ones.

    INPUT is a folder (searched recursively), a glob, a text file listing one image URI per
    line (.txt/.lst/.list), a single image, or a gs:// / s3:// path; give as many as you like
    (a shell-expanded glob works too). Each image is processed once.

    \b
    Exit status: 0 done; 1 environment (unwritable output, another run holds OUT, broken
    model file); 2 usage (unknown option, bad value, INPUT matches nothing, existing run id);
    3 too many images failed; 130 interrupted.
    """
    from sbdn_pipeline import logs

    verbose, quiet = settings.pop("verbose"), settings.pop("quiet")
    summary_json = settings.pop("summary_json")
    logs.configure(verbose=verbose, quiet=quiet)
    input_specs, beam_args = split_inputs_and_beam_args(
        [*arguments, *ctx.args], option_names(ctx.command))
    options = _checked_options(input_specs, output, settings)
    models = _load_models(settings["classifier_path"], settings["identifier_path"])
    options = dataclasses.replace(options, classifier_path=models["classifier"].path,
                                  identifier_path=models["identifier"].path)
    if not quiet:
        click.echo(_header(input_specs, output, models), err=True)
    summary = _run_detect(options, models, beam_args, quiet, verbose)
    _print_summary(summary, output, options.skip_existing, options.overlays_dir, quiet)
    if summary_json:
        _write_summary_json(summary_json, summary)
    if not summary.reconciled:
        fail("counts do not add up: some images are missing from both tables (a bug; "
             "please report it with this output)")
    if summary.error_fraction > options.max_error_fraction:
        click.echo(
            f"Error: {summary.error_fraction:.0%} of the processed images failed (limit "
            f"{options.max_error_fraction:.0%}); is INPUT the right folder/bucket? Top reasons "
            f"are in the errors table; everything was written.", err=True)
        ctx.exit(EXIT_TOO_MANY_ERRORS)


def _checked_options(input_specs: list[str], output: str, settings: dict):
    """DetectOptions, after every check that needs no model: usage errors exit 2, others 1.

    All of it runs before models load, so a wrong command line fails in a fraction of a second.
    """
    from sbdn_pipeline import inputs, output_folder

    if not input_specs:
        usage("missing INPUT (a folder, glob, list file or image)")
    if settings["retry_errors"] and not settings["skip_existing"]:
        usage("--retry-errors only makes sense with --skip-existing")
    if not output.strip():
        usage("--output is empty; give a folder")
    options = _detect_options(input_specs, output, settings)
    _check_inputs(input_specs, output)
    _check_output(output, options.overlays_dir)
    if not inputs.is_remote(output):
        try:
            output_folder.check_new_run(output, options.run_id, options.overwrite_run)
            output_folder.check_unlocked(output)
        except output_folder.RunExistsError as exc:
            usage(str(exc))
        except output_folder.OutputError as exc:
            fail(str(exc))
    return options


def _header(input_specs: list[str], output: str, models: dict) -> str:
    classifier, identifier = models["classifier"], models["identifier"]
    return (f"sbdn detect: {_describe_inputs(input_specs)} -> {output}\n"
            f"  classifier {classifier.model_id} (input {classifier.input_size} px)\n"
            f"  identifier {identifier.model_id} (input {identifier.input_size} px)")


def _write_summary_json(path: str, summary) -> None:
    import json

    from sbdn_pipeline import atomic

    try:
        atomic.write_text(path, json.dumps(summary.to_dict(), indent=2))
    except OSError as exc:
        fail(f"--summary-json: cannot write {path}: {exc.strerror or exc}")


def _describe_inputs(input_specs: list[str]) -> str:
    if len(input_specs) <= 3:
        return ", ".join(input_specs)
    return f"{input_specs[0]}, ... ({len(input_specs)} inputs)"


def _detect_options(input_specs: list[str], output: str, settings: dict):
    """DetectOptions from the command line (model paths filled in once models are found)."""
    from sbdn_pipeline.options import DetectOptions

    fields = {field.name for field in dataclasses.fields(DetectOptions)}
    values = {name: value for name, value in settings.items() if name in fields}
    values.update(classifier_path=values.get("classifier_path") or "",
                  identifier_path=values.get("identifier_path") or "")
    try:
        return DetectOptions(input=tuple(input_specs), output=output, **values)
    except ValueError as exc:
        usage(str(exc))
