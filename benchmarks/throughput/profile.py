"""``--profile``: ``sbdn detect`` under py-spy, and the top costs of the profile as tables.

A profile answers "where does the time go" for the detect row; the throughput table only says
how much there is. py-spy samples every process of the tree (``--subprocesses``: Beam's
workers), so a Python thread blocked in a TensorFlow op counts as busy and model time shows up
under ``run_inference``.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from typing import Any

from benchmarks.tables import markdown_table
from benchmarks.throughput.common import ROOT, BenchmarkError, say
from benchmarks.throughput.corpus import Corpus
from benchmarks.throughput.launch import ModelChoice, tail
from benchmarks.throughput.measurement import measure_command
from benchmarks.throughput.report import result_paths
from benchmarks.throughput.rows import detect_command

PROJECT_CODE = ("sbdn_pipeline/", "beam_jobs/")
PROFILE_TABLES = (
    ("project", "Our own functions by inclusive time (which stage the time goes to)"),
    ("files", "Source files by self time"),
    ("self", "Functions by self time"),
)


def _where(frame: dict[str, Any]) -> str:
    file = frame.get("file") or "?"
    return os.path.relpath(file, ROOT) if file.startswith(ROOT + os.sep) else file


def summarise_speedscope(path: str, top: int = 25) -> dict[str, Any]:
    """Top costs in a py-spy speedscope profile, in sampled seconds (all processes and threads).

    Returns:
        ``self``: functions by own time; ``files``: source files by own time;
        ``project``: our own functions (sbdn_pipeline/, beam_jobs/) by inclusive time, which
        says which stage of the job the time goes to; ``total_s``: all samples; ``wall_s``:
        the longest thread's profile duration.
    """
    with open(path, encoding="utf-8") as handle:
        profile = json.load(handle)
    frames = profile["shared"]["frames"]
    labels = [f"{frame['name']} ({_where(frame)})" for frame in frames]
    files = [_where(frame) for frame in frames]
    # py-spy --subprocesses adds a synthetic root frame per process: not a function.
    synthetic = {i for i, frame in enumerate(frames)
                 if frame["name"].startswith("process ") and not frame.get("file")}
    own: dict[str, float] = {}
    own_files: dict[str, float] = {}
    project: dict[str, float] = {}
    total = 0.0
    for part in profile["profiles"]:
        for stack, weight in zip(part.get("samples", []), part.get("weights", [])):
            stack = [index for index in stack if index not in synthetic]
            if not stack:
                continue
            total += weight
            leaf = stack[-1]  # speedscope stacks run from the root to the leaf
            own[labels[leaf]] = own.get(labels[leaf], 0.0) + weight
            own_files[files[leaf]] = own_files.get(files[leaf], 0.0) + weight
            for label in {labels[i] for i in stack if files[i].startswith(PROJECT_CODE)}:
                project[label] = project.get(label, 0.0) + weight

    def best(table: dict[str, float]) -> list[tuple[str, float]]:
        return sorted(table.items(), key=lambda item: -item[1])[:top]

    durations = [part.get("endValue", 0) - part.get("startValue", 0)
                 for part in profile["profiles"]]
    return {"self": best(own), "files": best(own_files), "project": best(project),
            "total_s": round(total, 2), "wall_s": round(max(durations, default=0.0), 2)}


def find_py_spy() -> str:
    """The py-spy executable (next to this Python first)."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    found = beside if os.path.exists(beside) else shutil.which("py-spy")
    if not found:
        raise BenchmarkError("--profile needs py-spy: pip install py-spy")
    return found


def summary_markdown(summary: dict[str, Any], images: int, rate_hz: int, name: str) -> str:
    """The profile's three tables, with what the seconds mean."""
    lines = [
        "# Profile of sbdn detect", "",
        f"{images} images; py-spy at {rate_hz} Hz, all processes and threads, idle excluded: "
        f"{summary['total_s']} s of samples over {summary['wall_s']} s of profile (a thread "
        "blocked in a TensorFlow op counts as busy). Start-up (imports, model loading) is "
        f"included: compare two sizes to see it. Open `{name}` in https://www.speedscope.app/.",
        "",
    ]
    for kind, title in PROFILE_TABLES:
        body = [[label, f"{seconds:.2f}", f"{seconds / max(summary['total_s'], 1e-9):.0%}"]
                for label, seconds in summary[kind]]
        header = ("file" if kind == "files" else "function", "seconds", "share")
        lines += [f"## {title}", "", markdown_table(header, body), ""]
    return "\n".join(lines)


def run_profile(corpus: Corpus, models: ModelChoice, args: Any, extra: list[str]) -> int:
    """``sbdn detect`` on the whole corpus under py-spy: a speedscope file (or flame graph SVG)
    and, for speedscope, a Markdown summary of the top costs."""
    py_spy = find_py_spy()
    run_dir = os.path.join(
        args.work, "runs", "profile-" + datetime.datetime.now().strftime("%Y%m%dT%H%M%S"))
    os.makedirs(run_dir)
    os.makedirs(args.results_dir, exist_ok=True)
    json_path, _ = result_paths(args.results_dir, "profile-detect", args.tag)
    suffix = ".speedscope.json" if args.profile_format == "speedscope" else ".svg"
    profile_path = json_path[: -len(".json")] + suffix
    detect = detect_command(corpus.images, os.path.join(run_dir, "detect-out"),
                            os.path.join(run_dir, "summary.json"), models.for_detect(), extra)
    command = [py_spy, "record", "--subprocesses", "--rate", str(args.profile_rate),
               "--format", args.profile_format, "--output", profile_path, "--", *detect]
    say(f"profiling detect on {corpus.count} images: {' '.join(command)}")
    measured = measure_command(command, os.path.join(run_dir, "detect.log"))
    if measured.exit_code != 0 or not os.path.exists(profile_path):
        say(f"profiling failed:\n{tail(measured.output)}")
        return 1
    say(f"  wrote {profile_path} ({measured.wall_s:.1f} s under py-spy)")
    if args.profile_format == "speedscope":
        text = summary_markdown(summarise_speedscope(profile_path), corpus.count,
                                args.profile_rate, os.path.basename(profile_path))
        summary_path = profile_path[: -len(".speedscope.json")] + ".md"
        with open(summary_path, "w", encoding="utf-8") as handle:
            handle.write(text)
        say(text + f"\n  summary: {summary_path}")
    return 0
