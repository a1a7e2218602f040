"""`sbdn make-dataset` and `sbdn show-dataset`: make and look at synthetic blur training data."""

from __future__ import annotations

import logging
import time

import click

from sbdn_pipeline.synth.presets import (
    DEFAULT_EXAMPLES_PER_SHARD,
    DEFAULT_PRESET,
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    DEFAULT_VARIANTS_PER_IMAGE,
    PRESETS,
)
from sbdn_pipeline.synth.presets import SPLIT_NAMES as SPLITS

EPILOG_MAKE = """\b
Examples:
  sbdn make-dataset --sharp-images ../shared/data/sharp --output /work/data/sbdn-realistic \\
      --variants-per-image 8 --seed 0 --direct_num_workers=2 --direct_running_mode=multi_processing
  sbdn make-dataset --sharp-images ../shared/data/sharp --output /work/data/sbdn-curated16 \\
      --variants-per-image 16 --exclude-sources models/training-data/natural-depth-of-field.txt
  sbdn make-dataset --sharp-images 'photos/**/*.jpg' --output out/ --preset original
  sbdn make-dataset --sharp-images gs://bucket/sharp/ --output gs://bucket/sbdn-data/ \\
      --runner DataflowRunner --project P --region europe-west1 --temp_location gs://bucket/tmp

\b
Output: OUT/{train,val,test}/part-*.tfrecord.gz, OUT/manifest.json (counts and exact
parameters), OUT/manifest.parquet (one row per example). Splits are by source photo.
Any option not listed above is passed to Apache Beam.
"""


@click.command(
    "make-dataset",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog=EPILOG_MAKE,
)
@click.option(
    "--sharp-images", required=True, help="Folder, glob, manifest or cloud path of sharp photos."
)
@click.option("--output", required=True, help="Data set folder to create (local or cloud).")
@click.option(
    "--variants-per-image",
    type=click.IntRange(min=1),
    default=None,
    help="Examples per photo, half sharp, half blurred [default: 8 realistic, 2 original].",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of splits and synthesis."
)
@click.option(
    "--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=DEFAULT_VAL_FRACTION,
    show_default=True,
)
@click.option(
    "--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=DEFAULT_TEST_FRACTION,
    show_default=True,
)
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=DEFAULT_PRESET,
    show_default=True,
    help="photographic: linear-light blur, object-aligned regions, layered depth of field, "
    "shake, video motion, noise and JPEG; cross-recipe: kernels, shapes and strengths no "
    "training preset uses (for evaluation); realistic: the previous default; original: the "
    "research recipe.",
)
@click.option(
    "--max-long-side",
    type=click.IntRange(min=0),
    default=0,
    help="Stored images are capped to this long side [default: the preset's, photographic "
    "1600, realistic 1024].",
)
@click.option(
    "--segments",
    "segments_dir",
    default="",
    help="Folder of human segmentations laid out like --sharp-images "
    "(<group>/<stem>_<annotator>.png label maps), e.g. ../shared/data/segments.",
)
@click.option(
    "--natural-dof",
    "natural_dof_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="List of photos (like --exclude-sources) that already have natural depth of field: "
    "never sharp negatives, their soft parts labelled blurred, e.g. "
    "models/training-data/natural-depth-of-field.txt.",
)
@click.option(
    "--test-only-groups",
    default="",
    help="Comma-separated source groups whose photos all go to the test split (unseen "
    "source folders for a cross-recipe set).",
)
@click.option(
    "--splits",
    "splits_csv",
    default=",".join(SPLITS),
    show_default=True,
    help="Comma-separated splits to write (e.g. val,test for an evaluation-only set).",
)
@click.option("--examples-per-shard", type=click.IntRange(min=1),
              default=DEFAULT_EXAMPLES_PER_SHARD, show_default=True)
@click.option(
    "--exclude-sources",
    "exclude_sources_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Text file of photo paths (relative to --sharp-images, '#' starts a comment) to leave "
    "out, e.g. models/training-data/natural-depth-of-field.txt.",
)
@click.option("--overwrite", is_flag=True, help="Replace a data set already in --output.")
@click.pass_context
def make_dataset_command(ctx: click.Context, **settings) -> None:
    """Make a synthetic blur training data set (TFRecords) from sharp photos with Beam."""
    from sbdn_pipeline.cli.args import option_names, split_inputs_and_beam_args

    strays, beam_args = split_inputs_and_beam_args(ctx.args, option_names(ctx.command))
    if strays:
        raise click.UsageError(f"unexpected argument {strays[0]!r} (make-dataset takes options "
                               "only; photos come from --sharp-images)")
    from beam_jobs import make_dataset

    try:
        options = _make_dataset_options(**settings)
        photos = make_dataset.list_source_photos(options)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    # Progress: one line per source photo from the job's logger.
    logging.getLogger("beam_jobs.make_dataset").setLevel(logging.INFO)
    excluded = f", {len(options.exclude_sources)} excluded" if options.exclude_sources else ""
    click.echo(
        f"make-dataset: {len(photos)} source photos x {options.variants_per_image} variants "
        f"(preset {options.preset}, seed {options.seed}{excluded}) -> {options.output}",
        err=True,
    )
    started = time.monotonic()
    try:
        manifest = make_dataset.run(options, beam_args, photos=photos)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_summary(manifest, time.monotonic() - started), err=True)


def _make_dataset_options(variants_per_image: int | None, exclude_sources_file: str | None,
                          natural_dof_file: str | None, test_only_groups: str,
                          splits_csv: str, **settings):
    """MakeDatasetOptions from the command line (list files read, comma lists split)."""
    from beam_jobs import make_dataset

    if variants_per_image is None:
        # The original recipe is deterministic per photo: one sharp and one blurred version.
        original = settings["preset"] == "original"
        variants_per_image = 2 if original else DEFAULT_VARIANTS_PER_IMAGE

    def listed(path: str | None) -> tuple[str, ...]:
        return make_dataset.read_exclude_list(path) if path else ()

    return make_dataset.MakeDatasetOptions(
        variants_per_image=variants_per_image,
        exclude_sources=listed(exclude_sources_file),
        natural_dof_sources=listed(natural_dof_file),
        test_only_groups=_csv(test_only_groups),
        splits=_csv(splits_csv),
        **settings,
    )


def format_summary(manifest: dict, elapsed_s: float | None = None) -> str:
    """Human-readable counts of a data set manifest."""
    totals = manifest["totals"]
    lines = [
        f"wrote {totals['examples']} examples ({totals['positives']} blurred, "
        f"{totals['negatives']} sharp) from {totals['source_photos']} photos"
        + (f" in {elapsed_s:.0f} s" if elapsed_s is not None else "")
    ]
    for split, counts in manifest["splits"].items():
        kinds = ", ".join(f"{k} {n}" for k, n in counts["blur_kind"].items())
        shapes = ", ".join(f"{k} {n}" for k, n in counts["region_shape"].items())
        lines.append(
            f"  {split}: {counts['examples']} examples from {counts['source_photos']} photos; "
            f"kinds: {kinds}; shapes: {shapes}"
        )
    if manifest["rejected"]:
        lines.append(f"  rejected {len(manifest['rejected'])} source photos (see manifest.json):")
        lines += [f"    {r['path']}: {r['error']}" for r in manifest["rejected"][:10]]
    return "\n".join(lines)


@click.command("show-dataset")
@click.argument("data_dir", metavar="OUT")
@click.option("--n", "count", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--png", "png_path", required=True, help="Where to write the grid image.")
@click.option(
    "--split", type=click.Choice(SPLITS), default="train", show_default=True
)
@click.option("--tile-size", type=click.IntRange(min=64), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Which examples to pick.")
@click.option(
    "--positives-fraction",
    type=click.FloatRange(0, 1),
    default=0.75,
    show_default=True,
    help="Share of blurred examples in the grid (the interesting ones).",
)
@click.option(
    "--max-colours",
    type=click.IntRange(0, 256),
    default=0,
    show_default=True,
    help="Quantise to this many colours for a smaller PNG (0 = full colour).",
)
def show_dataset_command(
    data_dir: str,
    count: int,
    png_path: str,
    split: str,
    tile_size: int,
    seed: int,
    positives_fraction: float,
    max_colours: int,
) -> None:
    """Render a grid of data set examples with blur masks outlined (red) and captions."""
    from sbdn_pipeline.synth import preview

    try:
        written = preview.write_grid(
            data_dir,
            png_path,
            split=split,
            count=count,
            tile_size=tile_size,
            seed=seed,
            positives_fraction=positives_fraction,
            max_colours=max_colours or None,
        )
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {png_path} ({written} examples from {data_dir}/{split})", err=True)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
