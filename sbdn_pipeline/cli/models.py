"""`sbdn train` and `sbdn evaluate`: train the networks and measure them against baselines."""

from __future__ import annotations

import shlex

import click
from click.core import ParameterSource

from sbdn_pipeline.cli.errors import fail
from sbdn_pipeline.options import (
    DEFAULT_BLUR_THRESHOLD,
    DEFAULT_CLASSIFIER_TILES,
    DEFAULT_IDENTIFIER_TILES,
    DEFAULT_MASK_THRESHOLD,
    DEFAULT_TILE_POOLING,
)
from sbdn_pipeline.synth.presets import SPLIT_NAMES
from sbdn_pipeline.tiling import POOLING_METHODS
from sbdn_pipeline.training.defaults import (
    DEFAULT_BLUR_MAP_WEIGHT,
    DEFAULT_COLOUR_JITTER,
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_EVAL_SPLIT,
    DEFAULT_LETTERBOX_FRACTION,
    DEFAULT_PATIENCE,
    DEFAULT_TURN_AND_FLIP,
    LOSSES,
    TASKS,
)

DEFAULT_TIME_BUDGET_MINUTES = 60.0

EPILOG_TRAIN = """\b
Examples:
  sbdn train classifier --data DATA --out runs/classifier
  sbdn train identifier --data DATA --out runs/identifier --time-budget-minutes 60
  sbdn train classifier --data DATA --arch resnet50 --out runs/resnet50
  sbdn train identifier --data DATA --arch original-encoder-decoder --out runs/original

\b
Defaults per architecture (image size, batch size, epochs, learning rate, loss) are chosen so
one default model trains in about an hour on a 2-core CPU; every run stops cleanly after
--time-budget-minutes. Run the same command again to resume a run that was killed.
OUT gets model.keras (best validation epoch), train_summary.json, training_log.csv,
training_curve.png and checkpoints/.
"""

EPILOG_EVALUATE = """\b
Examples:
  sbdn evaluate --data DATA --classifier runs/classifier/model.keras \\
      --identifier runs/identifier/model.keras --out eval/default
  sbdn evaluate --data DATA --cross-recipe DATA_X --split val \\
      --classifier C.keras --identifier I.keras --out eval/select      # choose models
  sbdn evaluate --data photos/ --masks photo-masks/ --calibration-data DATA \\
      --classifier models/classifier.keras --identifier models/identifier.keras --out eval/real

\b
DATA is a data set from `sbdn make-dataset` (its test split is evaluated) or a
folder/glob/manifest of images (scores per file; folders named sharp/ and blurry/ or
blurred/ are used as labels; --masks adds mask metrics).

\b
Classic baselines run in the same pass on the same images, at native resolution:
image level  blur-effect (skimage blur_effect), laplacian-variance, lbp-mean;
maps         laplacian-energy, lbp-map (Yi & Eramian 2016), all-blurred (reference).
Image-level baselines get the threshold with the best accuracy on the val split of DATA
(or of --calibration-data); maps are scored like the identifier.

\b
--cross-recipe DATA_X: a data set made with another `sbdn make-dataset` preset from the
same photos; its split of the same name is evaluated with the same models and baseline
thresholds. OUT gets own/ and cross-recipe/ (each a full evaluation) and a metrics.json
with both ("datasets": {"own": ..., "cross-recipe": ...}). Select models on --split val.
"""


def tile_options(command):  # noqa: ANN001, ANN201 - a click decorator
    """--classifier-tiles, --tile-pooling, --identifier-tiles: shared by detect and evaluate."""
    for option in reversed([
        click.option(
            "--classifier-tiles", type=click.IntRange(0, 64), default=DEFAULT_CLASSIFIER_TILES,
            show_default=True, metavar="N",
            help="Most tiles per image the classifier sees at (or within 2x of) the image's "
            "native scale; 0 = only the whole image letterboxed to the model input."),
        click.option(
            "--tile-pooling", type=click.Choice(POOLING_METHODS), default=DEFAULT_TILE_POOLING,
            show_default=True,
            help="How tile probabilities become P(blurry): mean, topk (mean of the most "
            "blurry half), max of the tiles; global = the letterbox alone; NAME+global = "
            "average of the two."),
        click.option(
            "--identifier-tiles", type=click.IntRange(0, 64), default=DEFAULT_IDENTIFIER_TILES,
            show_default=True, metavar="N",
            help="Most tiles per blurry image the identifier sees at (or within 2x of) native "
            "scale; 0 = the letterbox only. Masks are refined to the image's edges either way."),
    ]):
        command = option(command)
    return command


def _comma_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def _command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the options that were given (for the summary)."""
    words = ctx.command_path.split()
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source in (None, ParameterSource.DEFAULT):
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif param.is_flag and param.secondary_opts:
            words.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            if value:
                words.append(param.opts[0])
        else:
            words.extend([param.opts[0], str(value)])
    return shlex.join(words)


@click.command("train", epilog=EPILOG_TRAIN)
@click.argument("task", type=click.Choice(TASKS))
@click.option("--data", required=True, help="Data set folder written by `sbdn make-dataset`.")
@click.option(
    "--arch",
    default=None,
    help="Network: highpass-evidence-classifier (default classifier), resnet50, highpass-unet "
    "(default identifier) or original-encoder-decoder.",
)
@click.option("--out", required=True, help="Run folder (created; reused to resume).")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Planned epochs [default per arch: 40].",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="[default per arch: 16]"
)
@click.option(
    "--image-size",
    type=click.IntRange(min=32),
    default=None,
    help="Input side S [default: the arch's shipping size].",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0),
    default=None,
    help="Peak learning rate [default per arch].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--time-budget-minutes",
    type=click.FloatRange(min=0),
    default=DEFAULT_TIME_BUDGET_MINUTES,
    show_default=True,
    help="Stop cleanly after this much training time (summed over resumes); 0 = no limit.",
)
@click.option(
    "--steps-per-epoch",
    type=click.IntRange(min=1),
    default=None,
    help="Batches per epoch [default: one pass].",
)
@click.option(
    "--validation-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Validation batches [default: all].",
)
@click.option("--source-groups", default=None, help="Comma-separated source groups to train on.")
@click.option(
    "--exclude-source-groups",
    default=None,
    help="Comma-separated groups (or group-name prefixes) to leave out [default: none].",
)
@click.option(
    "--positives-only/--all-examples",
    default=False,
    help="Train only on blurred examples [default: all examples].",
)
@click.option(
    "--loss", type=click.Choice(LOSSES), default=None, help="[default per arch]"
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=DEFAULT_PATIENCE,
    show_default=True,
    help="Early stopping patience (epochs).",
)
@click.option(
    "--letterbox-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=DEFAULT_LETTERBOX_FRACTION,
    show_default=True,
    help="Share of training examples shown whole and letterboxed instead of cropped.",
)
@click.option(
    "--colour-jitter",
    type=click.FloatRange(0, 1),
    default=DEFAULT_COLOUR_JITTER,
    show_default=True,
    help="Strength of random exposure, white-balance, saturation and gamma changes of the "
    "training images (blur labels are unaffected); 0 = none.",
)
@click.option(
    "--turn-and-flip/--no-turn-and-flip",
    default=DEFAULT_TURN_AND_FLIP,
    show_default=True,
    help="Also turn training views by random quarter turns and flip them upside down "
    "(left-right flips are always on).",
)
@click.option(
    "--blur-map-weight",
    type=click.FloatRange(min=0),
    default=DEFAULT_BLUR_MAP_WEIGHT,
    show_default=True,
    help="Classifier only: weight of the training-only blur-map loss (deep supervision from "
    "the masks); 0 trains on image labels alone.",
)
@click.option(
    "--max-crop-scale",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Training crops are at most IMAGE_SIZE x this on a side before resizing, so the "
    "network learns blur at (or within this factor of) the stored pixel scale, as tiled "
    "native-resolution inference shows it [default: up to the short side].",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Warm start: copy the weights of every layer with the same name and shapes from "
    "this .keras model (e.g. the shipped model) into the new network.",
)
@click.option(
    "--cache/--no-cache",
    default=False,
    show_default=True,
    help="Cache the encoded training records in memory.",
)
@click.option(
    "--resume/--restart",
    default=True,
    show_default=True,
    help="Continue the run in --out, or start over.",
)
@click.pass_context
def train_command(
    ctx: click.Context, task: str, data: str, arch: str | None, out: str, **options
) -> None:
    """Train a blur classifier or blur identifier (TASK) on a synthetic data set."""
    from sbdn_pipeline import architectures
    from sbdn_pipeline.training import train as training

    arch = arch or (
        architectures.DEFAULT_CLASSIFIER
        if task == "classifier"
        else architectures.DEFAULT_IDENTIFIER
    )
    budget_minutes = options.pop("time_budget_minutes")
    try:
        # Building the config checks every value (an unknown arch too) before any work.
        config = training.TrainConfig(
            task=task,
            data_dir=data,
            arch=arch,
            out_dir=out,
            time_budget_s=budget_minutes * 60.0 if budget_minutes else None,
            source_groups=_comma_list(options.pop("source_groups")),
            exclude_source_groups=_comma_list(options.pop("exclude_source_groups")),
            command=_command_line(ctx),
            **options,
        )
        result = training.train(config, log=click.echo)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"model: {result.model_path} (best epoch {result.best_epoch} of {result.epochs_run}, "
        f"{result.stopped_because}, {result.wall_time_s / 60:.1f} min)"
    )
    click.echo(f"summary: {result.summary_path}")


@click.command("evaluate", epilog=EPILOG_EVALUATE)
@click.option("--data", required=True, help="Data set folder, or folder/glob/manifest of images.")
@click.option("--classifier", "classifier_path", default=None, help="Classifier .keras file.")
@click.option("--identifier", "identifier_path", default=None, help="Identifier .keras file.")
@click.option("--out", required=True, help="Folder for metrics.json, CSV files and plots.")
@click.option(
    "--split", type=click.Choice(SPLIT_NAMES), default=DEFAULT_EVAL_SPLIT, show_default=True
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=DEFAULT_BLUR_THRESHOLD,
    show_default=True,
    help="Classifier decision threshold (the shipped one by default).",
)
@click.option(
    "--mask-threshold",
    type=click.FloatRange(0, 1),
    default=DEFAULT_MASK_THRESHOLD,
    show_default=True,
)
@click.option(
    "--cross-recipe",
    "cross_recipe",
    default=None,
    metavar="DATA_X",
    help="Second data set (another generator recipe): also evaluate its split of the same "
    "name, with the same models and baseline thresholds.",
)
@click.option(
    "--masks",
    "masks",
    default=None,
    metavar="DIR",
    help="Folder mode: truth masks DIR/<image stem>.png (8-bit grey or binary PNG, white = "
    "blurred; resized to the image) for mask metrics on those images.",
)
@click.option(
    "--calibration-data",
    default=None,
    metavar="DATA",
    help="Data set whose val split fits the image-level baselines' thresholds [default: "
    "--data if it is a data set; a folder otherwise gets baseline ROC AUC only].",
)
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also run the classic baselines (blur effect, Laplacian, LBP; see below).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_EVAL_BATCH_SIZE,
              show_default=True)
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate only the first N images.",
)
@click.option("--plots/--no-plots", default=True, show_default=True)
@tile_options
def evaluate_command(  # noqa: PLR0913 - one parameter per option
    data: str,
    classifier_path: str | None,
    identifier_path: str | None,
    out: str,
    split: str,
    threshold: float,
    mask_threshold: float,
    cross_recipe: str | None,
    masks: str | None,
    calibration_data: str | None,
    baselines: bool,
    batch_size: int,
    max_examples: int | None,
    plots: bool,
    classifier_tiles: int,
    tile_pooling: str,
    identifier_tiles: int,
) -> None:
    """Measure models and classic baselines on a data set split (and a cross-recipe one) or a
    folder of images (with optional masks)."""
    from sbdn_pipeline.inference import ModelFileError
    from sbdn_pipeline.inputs import InputError
    from sbdn_pipeline.training import evaluate as evaluation

    if not (classifier_path or identifier_path or baselines):
        raise click.UsageError("give --classifier and/or --identifier, or keep --baselines")
    try:
        evaluation.evaluate(
            data,
            out,
            classifier=classifier_path,
            identifier=identifier_path,
            baselines=baselines,
            threshold=threshold,
            mask_threshold=mask_threshold,
            split=split,
            cross_recipe=cross_recipe,
            masks=masks,
            calibration_data=calibration_data,
            batch_size=batch_size,
            max_examples=max_examples,
            make_plots=plots,
            tiles=evaluation.TileSettings(classifier_tiles, identifier_tiles, tile_pooling),
            log=click.echo,
        )
    except (ValueError, FileNotFoundError, ModelFileError, InputError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"metrics: {out}/metrics.json")

@click.command("ship-model")
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
        fail(str(exc))
    entry = default_models.ship_model(model_path, role, models_dir, info.input_size,
                                      info.mask_stride)
    click.echo(f"shipped {role}: {entry['file']} sha256 {entry['sha256']} "
               f"(input {info.input_size} px)")
