"""Counts, blur rate, blurred-area quantiles and error reasons of an output folder.

Used by ``sbdn summarize`` (text or JSON) and by the HTML report.

Totals count each image once, by its most recent row over all runs read (so re-running over
the same folder does not double the counts); the per-run rows count what each run wrote.
The blur rate is ``blurry / (sharp + blurry)``: the share of the images the classifier could
judge, so unreadable files do not dilute it.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sbdn_pipeline import schemas
from sbdn_pipeline.report import tables

QUANTILES = (("p10", 0.10), ("p50", 0.50), ("p90", 0.90))
ERROR_EXAMPLES = 3


@dataclasses.dataclass(frozen=True)
class Counts:
    """Images in each outcome; ``images == sharp + blurry + errors``."""

    images: int
    sharp: int
    blurry: int
    errors: int

    @property
    def blur_rate(self) -> float | None:
        """blurry / (sharp + blurry); None when nothing was classified."""
        classified = self.sharp + self.blurry
        return self.blurry / classified if classified else None


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What one run wrote."""

    run_id: str
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    counts: Counts
    blur_thresholds: list[float]
    classifier_models: list[str]


@dataclasses.dataclass(frozen=True)
class ErrorReason:
    """One ``error_type`` with its count, stages and a few example URIs and messages."""

    error_type: str
    count: int
    stages: list[str]
    example_uris: list[str]
    example_message: str


@dataclasses.dataclass(frozen=True)
class OutputSummary:
    """Everything ``sbdn summarize`` reports about an output folder."""

    output: str
    run_id: str | None
    runs: list[RunSummary]
    counts: Counts
    superseded_rows: int
    area_quantiles: dict[str, float] | None
    error_reasons: list[ErrorReason]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps as ISO 8601 strings)."""

        def counts(value: Counts) -> dict[str, Any]:
            return {**dataclasses.asdict(value), "blur_rate": value.blur_rate}

        def when(value: datetime.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "output": self.output,
            "run_id": self.run_id,
            **counts(self.counts),
            "superseded_rows": self.superseded_rows,
            "blur_area_fraction": self.area_quantiles,
            "top_error_reasons": [dataclasses.asdict(reason) for reason in self.error_reasons],
            "runs": [
                {"run_id": run.run_id, "started_at": when(run.started_at),
                 "finished_at": when(run.finished_at), **counts(run.counts),
                 "blur_thresholds": run.blur_thresholds,
                 "classifier_models": run.classifier_models}
                for run in self.runs
            ],
        }


def count_outcomes(results: pa.Table, errors: pa.Table) -> Counts:
    """Sharp / blurry / error counts of a results and an errors table."""
    blurry = int(pc.sum(results.column(schemas.IS_BLURRY)).as_py() or 0) if results.num_rows else 0
    return Counts(images=results.num_rows + errors.num_rows, sharp=results.num_rows - blurry,
                  blurry=blurry, errors=errors.num_rows)


def area_quantiles(results: pa.Table) -> dict[str, float] | None:
    """p10/p50/p90 of blur_area_fraction over blurry images; None when there are none."""
    values = results.column(schemas.BLUR_AREA_FRACTION).drop_null().to_numpy()
    if values.size == 0:
        return None
    return {name: float(np.quantile(values, q)) for name, q in QUANTILES}


def error_reasons(errors: pa.Table, limit: int | None = None) -> list[ErrorReason]:
    """Errors grouped by error_type, most frequent first (ties by name)."""
    groups: dict[str, dict[str, Any]] = {}
    for uri, stage, error_type, message in zip(
        errors.column(schemas.IMAGE_URI).to_pylist(), errors.column(schemas.STAGE).to_pylist(),
        errors.column(schemas.ERROR_TYPE).to_pylist(),
        errors.column(schemas.ERROR_MESSAGE).to_pylist(),
        strict=True,
    ):
        group = groups.setdefault(error_type, {"count": 0, "stages": set(), "uris": [],
                                               "message": message})
        group["count"] += 1
        group["stages"].add(stage)
        if len(group["uris"]) < ERROR_EXAMPLES:
            group["uris"].append(uri)
    reasons = [
        ErrorReason(error_type=name, count=group["count"], stages=sorted(group["stages"]),
                    example_uris=group["uris"], example_message=group["message"])
        for name, group in groups.items()
    ]
    reasons.sort(key=lambda reason: (-reason.count, reason.error_type))
    return reasons[:limit] if limit is not None else reasons


def _time_range(*columns: pa.ChunkedArray) -> tuple[Any, Any]:
    values = [value for column in columns if len(column)
              for value in (pc.min(column).as_py(), pc.max(column).as_py()) if value is not None]
    return (min(values), max(values)) if values else (None, None)


def run_summaries(results: pa.Table, errors: pa.Table) -> list[RunSummary]:
    """One summary per run, in the order the runs started."""
    run_ids = (set(results.column(schemas.RUN_ID).to_pylist())
               | set(errors.column(schemas.RUN_ID).to_pylist()))
    runs = []
    for run_id in run_ids:
        run_results = results.filter(pc.equal(results.column(schemas.RUN_ID), run_id))
        run_errors = errors.filter(pc.equal(errors.column(schemas.RUN_ID), run_id))
        started, finished = _time_range(run_results.column(schemas.PROCESSED_AT),
                                        run_errors.column(schemas.PROCESSED_AT))
        runs.append(RunSummary(
            run_id=run_id,
            started_at=started,
            finished_at=finished,
            counts=count_outcomes(run_results, run_errors),
            blur_thresholds=sorted({round(float(v), 4) for v in
                                    run_results.column(schemas.BLUR_THRESHOLD).to_pylist()}),
            classifier_models=sorted(set(run_results.column(schemas.CLASSIFIER_MODEL).to_pylist())),
        ))
    epoch = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    runs.sort(key=lambda run: (run.started_at or epoch, run.run_id))
    return runs


def summarize(output: tables.Output, error_limit: int | None = 10) -> OutputSummary:
    """Summary of an output folder already read with :func:`tables.read_output`."""
    results, errors = tables.latest_per_image(output.results, output.errors)
    superseded = (output.results.num_rows + output.errors.num_rows
                  - results.num_rows - errors.num_rows)
    return OutputSummary(
        output=output.output,
        run_id=output.run_id,
        runs=run_summaries(output.results, output.errors),
        counts=count_outcomes(results, errors),
        superseded_rows=superseded,
        area_quantiles=area_quantiles(results),
        error_reasons=error_reasons(errors, error_limit),
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({_percent(part / whole if whole else None)})"


def format_text(summary: OutputSummary) -> str:
    """The human-readable summary ``sbdn summarize`` prints."""
    counts = summary.counts
    scope = f"run {summary.run_id}" if summary.run_id else (
        f"{len(summary.runs)} run{'s' if len(summary.runs) != 1 else ''}")
    lines = [
        f"sbdn output {summary.output} ({scope})",
        f"  images   {counts.images:,}",
        f"  sharp    {_share(counts.sharp, counts.images)}",
        f"  blurry   {_share(counts.blurry, counts.images)}",
        f"  errors   {_share(counts.errors, counts.images)}",
        f"  blur rate {_percent(counts.blur_rate)} of classified images "
        "(blurry / (sharp + blurry))",
    ]
    if summary.area_quantiles:
        quantiles = "  ".join(f"{name} {_percent(value)}"
                              for name, value in summary.area_quantiles.items())
        lines.append(f"  blurred area of blurry images: {quantiles}")
    if summary.superseded_rows:
        lines.append(f"  ({summary.superseded_rows:,} older rows of re-processed images not "
                     "counted; each image counts once, with its latest result)")
    if summary.error_reasons:
        lines.append("top error reasons:")
        width = max(len(reason.error_type) for reason in summary.error_reasons)
        for reason in summary.error_reasons:
            lines.append(f"  {reason.error_type:<{width}}  {reason.count:>7,}  "
                         f"e.g. {reason.example_uris[0]}")
    if summary.runs:
        lines.append("runs:")
        width = max(len(run.run_id) for run in summary.runs)
        lines.append(f"  {'run_id':<{width}}  {'started (UTC)':<19}  {'images':>8}  "
                     f"{'sharp':>8}  {'blurry':>8}  {'errors':>8}  blur rate")
        for run in summary.runs:
            started = f"{run.started_at:%Y-%m-%d %H:%M:%S}" if run.started_at else "-"
            c = run.counts
            lines.append(f"  {run.run_id:<{width}}  {started:<19}  {c.images:>8,}  "
                         f"{c.sharp:>8,}  {c.blurry:>8,}  {c.errors:>8,}  "
                         f"{_percent(c.blur_rate)}")
    return "\n".join(lines)
