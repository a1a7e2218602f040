"""Running one row at one size: start its subprocess, measure it, turn that into a report row.

Every row gets the same fields (``base_row``) so the report can put them side by side; the
detect row reads its counts and timings from ``sbdn detect --summary-json`` (not from the text
it prints, which is for people and may change), the worker rows from their result JSON.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.throughput.common import BLUR_THRESHOLD, ROW_LABELS, BenchmarkError
from benchmarks.throughput.measurement import Measured, measure_command, rate
from benchmarks.throughput.rows import detect_command

FIRST_RESULT_DETECT = (
    "process start to the summary file's write, minus the job's wall_seconds, plus its "
    "first_result_seconds"
)
FIRST_RESULT_WORKER = "process start to the first image's result, clocked inside the process"


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """The two models the detect and tfdata rows run; ``default`` when the shipped ones."""

    classifier: str
    identifier: str
    default: bool
    classifier_size: int = 0
    identifier_size: int = 0

    def for_detect(self) -> dict[str, str] | None:
        """The --classifier/--identifier to pass (None: the shipped ones, default options)."""
        if self.default:
            return None
        return {"classifier": self.classifier, "identifier": self.identifier}


def resolve_models(classifier: str | None, identifier: str | None) -> ModelChoice:
    """The models to benchmark: the ones given, else the shipped defaults; validated first,
    so a missing model stops the benchmark before minutes of corpus generation.

    Raises:
        BenchmarkError: no shipped model for a role that was not given, or an unusable file.
    """
    from sbdn_pipeline import default_models, inference

    resolved: dict[str, Any] = {}
    for role, path in (("classifier", classifier), ("identifier", identifier)):
        expected = ""
        if path is None:
            try:
                path, expected = default_models.default_model(role)
            except default_models.NoDefaultModelError as exc:
                raise BenchmarkError(
                    f"{exc}; pass --classifier PATH --identifier PATH (.keras files, e.g. "
                    "from `sbdn train`)"
                ) from None
        try:
            resolved[role] = inference.inspect_model(path, role, expected)
        except inference.ModelFileError as exc:
            raise BenchmarkError(f"{role}: {exc}") from None
    return ModelChoice(
        resolved["classifier"].path,
        resolved["identifier"].path,
        default=classifier is None and identifier is None,
        classifier_size=resolved["classifier"].input_size,
        identifier_size=resolved["identifier"].input_size,
    )


def _round(value: float | None, digits: int = 2) -> float | None:
    """Rounded for the report (timings are not precise beyond that); None stays None."""
    return None if value is None else round(value, digits)


def tail(text: str, lines: int = 15) -> str:
    """The end of a log: where the reason of a failure usually is."""
    return "\n".join(text.strip().splitlines()[-lines:])


def base_row(row: str, images: int, measured: Measured, log_path: str) -> dict[str, Any]:
    """The fields every row has, from the outside measurement of its process."""
    return {
        "id": row,
        "label": ROW_LABELS[row],
        "images": images,
        "exit_code": measured.exit_code,
        "wall_s": _round(measured.wall_s),
        "images_per_s": _round(rate(images, measured.wall_s)),
        "cpu_s": _round(measured.cpu_s),
        "cpu_s_per_image": _round(measured.cpu_s / images if images else None, 4),
        "peak_rss_mb": round(measured.peak_rss_mb),
        "first_result_s": None,
        "log": log_path,
    }


def count_rows(output: str) -> int:
    """Rows in a detect run's results and errors tables: every input must be in one."""
    import pyarrow.parquet as pq

    files = glob.glob(os.path.join(output, "results", "*", "*.parquet"))
    files += glob.glob(os.path.join(output, "errors", "*", "*.parquet"))
    return sum(pq.read_metadata(path).num_rows for path in files)


def read_detect_verdicts(output: str) -> dict[str, tuple[float, bool]]:
    """{file name: (blur_probability, is_blurry)} from a detect run's results table."""
    import pyarrow.parquet as pq

    verdicts: dict[str, tuple[float, bool]] = {}
    for path in glob.glob(os.path.join(output, "results", "*", "*.parquet")):
        table = pq.read_table(path, columns=["image_uri", "blur_probability", "is_blurry"])
        for uri, probability, blurry in zip(*(table.column(i).to_pylist() for i in range(3))):
            verdicts[os.path.basename(uri)] = (probability, blurry)
    return verdicts


def detect_first_result_s(measured: Measured, summary: dict[str, Any], path: str) -> float | None:
    """Seconds from process start to the job's first finished image.

    The job times itself from the pipeline's start (``wall_seconds``, ``first_result_seconds``)
    and writes the summary file right after; so the pipeline started ``wall_seconds`` before
    that write, and its first image ``first_result_seconds`` after. Interpreter exit, which
    follows the write, is not counted.
    """
    first = summary.get("first_result_seconds")
    if first is None or not os.path.exists(path):
        return None
    written = os.path.getmtime(path) - measured.launched_at
    return written - summary["wall_seconds"] + first


def run_detect(
    folder: str, images: int, models: ModelChoice, run_dir: str, extra: Sequence[str]
) -> dict[str, Any]:
    """The real ``sbdn detect`` on ``folder``; counts from its --summary-json file."""
    name = f"detect-{images}"
    output, summary_path = os.path.join(run_dir, f"{name}-out"), os.path.join(
        run_dir, f"{name}.summary.json")
    shutil.rmtree(output, ignore_errors=True)
    log_path = os.path.join(run_dir, f"{name}.log")
    command = detect_command(folder, output, summary_path, models.for_detect(), extra)
    measured = measure_command(command, log_path)
    result = base_row("detect", images, measured, log_path)
    result["command"] = shlex.join(command)
    summary: dict[str, Any] = {}
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as handle:
            summary = json.load(handle)
    result["summary"] = summary
    result["identifier_images"] = summary.get("segmented")
    result["first_result_s"] = _round(detect_first_result_s(measured, summary, summary_path))
    result["first_result_method"] = FIRST_RESULT_DETECT
    if measured.exit_code != 0 or not summary:
        result["error"] = tail(measured.output)
        return result
    result["rows_written"] = count_rows(output)
    result["_verdicts"] = read_detect_verdicts(output)
    return result


def run_worker(
    row: str, folder: str, images: int, spec: dict[str, Any], run_dir: str
) -> dict[str, Any]:
    """A worker row (``benchmarks.throughput.rows``) on ``folder``, in its own process."""
    name = f"{row}-{images}"
    spec = {**spec, "images": folder, "result": os.path.join(run_dir, f"{name}.result.json")}
    spec_path = os.path.join(run_dir, f"{name}.spec.json")
    with open(spec_path, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    if os.path.exists(spec["result"]):
        os.remove(spec["result"])
    log_path = os.path.join(run_dir, f"{name}.log")
    command = [sys.executable, "-m", "benchmarks.throughput.rows", row, spec_path]
    measured = measure_command(command, log_path)
    result = base_row(row, images, measured, log_path)
    result["command"] = shlex.join(command)
    if measured.exit_code != 0 or not os.path.exists(spec["result"]):
        result["error"] = tail(measured.output)
        return result
    with open(spec["result"], encoding="utf-8") as handle:
        inner = json.load(handle)
    if inner.pop("images") != images:
        result["error"] = f"{row} saw a different number of images than {images}"
    # Its own exact peak: the parent's sampling can miss the peak of a short process.
    result["peak_rss_mb"] = max(result["peak_rss_mb"], round(inner.pop("self_peak_rss_mb")))
    first_at = inner.pop("first_result_at")
    result["first_result_s"] = _round(None if first_at is None else first_at - measured.launched_at)
    result["first_result_method"] = FIRST_RESULT_WORKER
    if "probabilities" in inner:
        result["_probabilities"] = inner.pop("probabilities")
    result.update(inner)
    return result


def agreement_check(
    verdicts: dict[str, tuple[float, bool]], probabilities: dict[str, float]
) -> dict[str, Any]:
    """Do the job and the tf.data loop see the same pixels? Compare verdicts and P(blurry).

    If they disagree, the detect/tfdata ratio compares different work and means nothing.
    """
    common = sorted(set(verdicts) & set(probabilities))
    if not common:
        return {"images_compared": 0}
    differences = [abs(verdicts[name][0] - probabilities[name]) for name in common]
    agree = sum(verdicts[name][1] == (probabilities[name] >= BLUR_THRESHOLD) for name in common)
    return {
        "images_compared": len(common),
        "verdicts_agree": agree,
        "max_abs_probability_difference": float(f"{max(differences):.3g}"),
    }
