"""Options of the detect job (one object decides each threshold and limit) and Beam runner setup."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from typing import TYPE_CHECKING

from sbdn_pipeline.tiling import POOLING_METHODS

if TYPE_CHECKING:  # Beam is imported where it is used: the CLI reads defaults from here
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.runner import PipelineRunner

DEFAULT_BLUR_THRESHOLD = 0.5
DEFAULT_MASK_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 16
# 100 megapixels: larger than any camera photo, far smaller than a decompression bomb.
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
# Decode budget of a progressive JPEG, in pixels x scans: each scan passes over the whole
# coefficient buffer, so a 200 KB file of 4000x4000 pixels and thousands of scans took 27 s.
# Camera and web encoders write 10 scans (libjpeg) to about 20 (mozjpeg); this allows 32 scans
# at the 100 MP pixel limit (about 3 s of decoding at worst) and rejects the rest unread.
DEFAULT_MAX_JPEG_SCAN_PIXELS = 32 * DEFAULT_MAX_PIXELS
# Below this size (short side) or beyond this aspect ratio, "blurry" has no useful meaning.
DEFAULT_MIN_SIDE = 16
DEFAULT_MAX_ASPECT_RATIO = 20.0
# Connected blurred regions smaller than this fraction of the image are noise, not regions;
# their pixels still count towards blur_area_fraction.
DEFAULT_MIN_REGION_FRACTION = 0.001
# More errors than this (fraction of processed images) means the input is probably wrong
# (wrong bucket, wrong prefix): the run fails loudly, after writing what it has.
DEFAULT_MAX_ERROR_FRACTION = 0.5
# Overlays are drawn on the decoded working copy; keep it at least this large when they are on.
OVERLAY_LONG_SIDE = 1024
# Tiles at (or within 2x of) native scale per image, for each model (0 = letterbox only), and
# how the classifier's tile probabilities become one P(blurry) (sbdn_pipeline.tiling).
# Chosen on the val splits of the photographic and cross-recipe data sets with the v6 models
# (models/README.md, "Choosing tiles and pooling"): tiles averaged with the global view beat
# tiles or the global view alone; 4 classifier tiles scored best (AUC +0.004-0.005 over one)
# but halve the job's steady-state speed (0.15x OpenCV Laplacian variance vs 0.26x with one),
# below the floor of issue 15, so one tile is the default and 4 an option. 6 identifier tiles
# were not better than 2.
DEFAULT_CLASSIFIER_TILES = 1
DEFAULT_TILE_POOLING = "topk+global"
DEFAULT_IDENTIFIER_TILES = 2
# The identifier's stitched mask is refined (guided by the image) at the resolution the
# identifier analysed (native when its budget covers the frame at native scale, at most 2x
# below), capped at this long side; blur_area_fraction and regions come from it.
MASK_REFINE_LONG_SIDE = 1024
# mask_png stores the refined mask reduced to at most this long side (small Parquet rows).
MASK_PNG_LONG_SIDE = 512
# Run ids name folders: keep them to characters that cannot escape OUT or confuse readers.
RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"


@dataclasses.dataclass(frozen=True)
class DetectOptions:
    """Everything the detect job needs besides Beam's own options.

    Attributes:
        input: folder, glob, manifest (.txt: one URI per line), single file, or a cloud path;
            or a tuple of them (all are used, each image once).
        output: output folder (local path or cloud URI).
        classifier_path: `.keras` classifier file.
        identifier_path: `.keras` identifier file.
        blur_threshold: an image is blurry when blur_probability >= this.
        mask_threshold: a mask pixel is blurred when its confidence >= this.
        batch_size: largest inference batch.
        max_pixels: images with more pixels (read from the header) are rejected before decoding.
        max_file_bytes: larger files are rejected without being read whole.
        max_jpeg_scan_pixels: JPEGs whose pixels x scans exceed this are rejected before
            decoding (``too_many_scans``).
        min_side: images whose short side is smaller are rejected.
        max_aspect_ratio: images more elongated than this are rejected.
        min_region_fraction: smallest connected region reported in blur_regions.
        run_id: identifier of this run (folder name and column); made up when empty.
        skip_existing: process only images whose (URI, size, mtime) is not yet in OUT.
        retry_errors: with skip_existing, process images that only have errors rows again.
        max_error_fraction: fail the run (after writing) when more images than this fail.
        overwrite_run: when OUT already has run ``run_id``, replace it (else refuse to start).
        overlays_dir: when set, write an overlay JPEG per blurry image here.
        classifier_tiles: most native-scale tiles the classifier sees per image (0: only the
            letterbox of the whole image, as before tiling).
        tile_pooling: how tile probabilities (and the global view) become P(blurry); one of
            ``sbdn_pipeline.tiling.POOLING_METHODS``.
        identifier_tiles: most native-scale tiles the identifier sees per blurry image (0:
            letterbox only).
    """

    input: str | tuple[str, ...]
    output: str
    classifier_path: str
    identifier_path: str
    blur_threshold: float = DEFAULT_BLUR_THRESHOLD
    mask_threshold: float = DEFAULT_MASK_THRESHOLD
    batch_size: int = DEFAULT_BATCH_SIZE
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_jpeg_scan_pixels: int = DEFAULT_MAX_JPEG_SCAN_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    min_region_fraction: float = DEFAULT_MIN_REGION_FRACTION
    run_id: str = ""
    skip_existing: bool = False
    retry_errors: bool = False
    max_error_fraction: float = DEFAULT_MAX_ERROR_FRACTION
    overwrite_run: bool = False
    overlays_dir: str = ""
    classifier_tiles: int = DEFAULT_CLASSIFIER_TILES
    tile_pooling: str = DEFAULT_TILE_POOLING
    identifier_tiles: int = DEFAULT_IDENTIFIER_TILES

    def __post_init__(self) -> None:
        for name in ("blur_threshold", "mask_threshold", "max_error_fraction",
                     "min_region_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], not {value!r}")
        if not self.input_specs:
            raise ValueError("no INPUT given")
        if self.tile_pooling not in POOLING_METHODS:
            raise ValueError(f"tile pooling {self.tile_pooling!r} is not one of "
                             f"{', '.join(POOLING_METHODS)}")
        if self.classifier_tiles < 0 or self.identifier_tiles < 0:
            raise ValueError("tile budgets must be >= 0 (0 = letterbox only)")
        if self.run_id and not re.fullmatch(RUN_ID_PATTERN, self.run_id):
            raise ValueError(
                f"run id {self.run_id!r} may only use letters, digits, '.', '_' and '-' "
                "(it names a folder inside the output)"
            )


    @property
    def input_specs(self) -> tuple[str, ...]:
        """Every INPUT of the run (one or more)."""
        return (self.input,) if isinstance(self.input, str) else tuple(self.input)


# Local worker processes when the user names no runner: one per core, at most this many (each
# holds its own TensorFlow runtime and models, about 1 GB).
MAX_DEFAULT_LOCAL_WORKERS = 4


def make_pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the pass-through command-line flags."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(list(beam_args), save_main_session=False)


# Fewer local inputs than this run in the submitting process: worker processes each import
# TensorFlow and load the models again (~10 s on 2 cores) and only pay for it at scale.
# Measured with the v6 models on 2 cores, ~1024 px JPEGs: 8 images 13.7 s in one process vs
# 23.8 s with two workers; 200 images 25.4 s vs 28.4 s; steady state 16.7 vs 39 img/s, so
# the two lines cross near 300 images (benchmarks/README.md, "Start-up").
ONE_PROCESS_MAX_IMAGES = 300


def with_local_parallelism(beam_args: list[str], input_count: int | None = None) -> list[str]:
    """Choose local parallelism from the input's size, unless the user chose it.

    Small inputs run in this process (models loaded once, no worker start-up); larger ones get
    a worker process per core, which overlaps decoding and inference. Only applies when the
    user chose no runner and no local parallelism of their own.

    Args:
        input_count: number of inputs when known (None: unknown, e.g. a bucket: workers).
    """
    chosen = ("--runner", "--direct_num_workers", "--direct_running_mode")
    if any(arg.split("=")[0] in chosen for arg in beam_args):
        return list(beam_args)
    workers = min(os.cpu_count() or 1, MAX_DEFAULT_LOCAL_WORKERS)
    if workers < 2 or (input_count is not None and input_count < ONE_PROCESS_MAX_IMAGES):
        return list(beam_args)
    return [*beam_args, f"--direct_num_workers={workers}",
            "--direct_running_mode=multi_processing"]


LOCAL_RUNNERS = ("", "DirectRunner", "FnApiRunner", "BundleBasedDirectRunner",
                 "SwitchingDirectRunner", "PortableRunner")


def is_local_runner(options: PipelineOptions) -> bool:
    """True when the job runs on this machine (progress lines go to this terminal)."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner or ""
    runner_name = runner if isinstance(runner, str) else type(runner).__name__
    return runner_name.split(".")[-1] in LOCAL_RUNNERS


# Names of Beam's DaskRunner that select our fixed subclass of it.
DASK_RUNNER_NAMES = ("DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner")


def make_runner(options: PipelineOptions) -> PipelineRunner | None:
    """The runner to use: the user's ``--runner`` if given, else a quiet local runner.

    Beam's default DirectRunner first tries Prism, which downloads a binary at run time; on
    machines without internet access that fails with an alarming log before falling back. When
    no runner is named we go straight to the FnApiRunner (what DirectRunner falls back to), which
    honours ``--direct_num_workers`` and ``--direct_running_mode``.

    ``--runner DaskRunner`` gets ``sbdn_pipeline.dask_runner.SbdnDaskRunner``.

    Returns:
        A runner instance, or None to let Beam pick the runner named in the options.
    """
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    if runner in DASK_RUNNER_NAMES:
        # Beam's own DaskRunner (2.77) misroutes tagged outputs and drops data; see
        # sbdn_pipeline/dask_runner.py. Beam does not know the short name either.
        from sbdn_pipeline.dask_runner import SbdnDaskRunner

        return SbdnDaskRunner()
    if runner:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    # Same provision info DirectRunner builds, so worker processes see the pipeline options.
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    logging.getLogger(__name__).debug("No --runner given: using the local FnApiRunner")
    return fn_runner.FnApiRunner(provision_info=provision_info)
