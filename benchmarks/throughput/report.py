"""From measured rows to the numbers issue 17 asks for: steady state, ratios, targets; and the
saved JSON + Markdown report with the same tables the terminal shows.

Everything here is plain arithmetic on the rows' dicts, so it is tested without running
anything.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from collections.abc import Sequence
from typing import Any

from benchmarks.tables import markdown_table, number, text_table
from benchmarks.throughput.measurement import steady_state

Rows = list[dict[str, Any]]

STARTUP_LIMIT_S = 6.0
ORIGINAL_AT_LEAST = 10.0
TFDATA_AT_LEAST = 0.9
LAPLACIAN_AT_LEAST = 0.5


def find(rows: Rows, row: str, images: int) -> dict[str, Any] | None:
    """The successful result of ``row`` at ``images``, if any."""
    return next(
        (r for r in rows if r["id"] == row and r["images"] == images and not r.get("error")),
        None,
    )


def steady_states(rows: Rows, sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Per row, the steady state of each larger size against the smallest size.

    "The 400-image run minus the 8-image run": start-up and exit cancel out.
    """
    small, found = min(sizes), []
    for row in dict.fromkeys(r["id"] for r in rows):
        base = find(rows, row, small)
        for size in sorted(s for s in sizes if s > small):
            large = find(rows, row, size)
            if base is None or large is None:
                continue
            state = steady_state(
                (small, base["wall_s"], base["cpu_s"]), (size, large["wall_s"], large["cpu_s"])
            )
            found.append({"row": row, **dataclasses.asdict(state),
                          "label": f"{size}-image run minus {small}-image run"})
    return found


def _steady_rate(states: list[dict[str, Any]], row: str, size: int) -> float | None:
    """The steady img/s of ``row`` between the smallest size and ``size``."""
    return next(
        (s["images_per_s"] for s in states if s["row"] == row and s["large_images"] == size), None
    )


def _ratio_entry(name: str, size: int, value: float | None, at_least: float | None = None,
                 at_most: float | None = None) -> dict[str, Any]:
    """One ratio row: value, its target (at least or at most) and whether it is met."""
    met = None
    if value is not None and at_least is not None:
        met = value >= at_least
    elif value is not None and at_most is not None:
        met = value <= at_most
    return {"name": name, "images": size, "value": None if value is None else round(value, 3),
            "at_least": at_least, "at_most": at_most, "met": met}


def _divide(top: float | None, bottom: float | None) -> float | None:
    """top / bottom, None when either is missing (a failed row must not give a ratio)."""
    return top / bottom if top and bottom else None


def issue_ratios(rows: Rows, sizes: Sequence[int], states: list[dict[str, Any]]) -> Rows:
    """Issue 17's targets, each at the sizes it applies to, with met / not met.

    The smallest size stands for "8 images" (start-up); every larger size gets the ratios
    (the issue names 400 for detect/original and 400 and 2,000 for detect/tfdata; the others
    are extra information). All img/s are whole command unless the name says steady state.
    """
    small = min(sizes)
    detect_small = find(rows, "detect", small)
    entries = [_ratio_entry(
        f"detect whole command on {small} images, s", small,
        detect_small["wall_s"] if detect_small else None, at_most=STARTUP_LIMIT_S)]
    for size in sorted(s for s in sizes if s > small):
        detect, original = find(rows, "detect", size), find(rows, "original", size)
        tfdata, laplacian = find(rows, "tfdata", size), find(rows, "laplacian", size)

        def speed(row: dict[str, Any] | None) -> float | None:
            return row["images_per_s"] if row else None

        entries += [
            _ratio_entry("detect / original (img/s, whole command)", size,
                         _divide(speed(detect), speed(original)), at_least=ORIGINAL_AT_LEAST),
            _ratio_entry("detect / tfdata (img/s, whole command)", size,
                         _divide(speed(detect), speed(tfdata)), at_least=TFDATA_AT_LEAST),
            _ratio_entry(
                f"detect steady state ({size} - {small} runs) / laplacian whole process", size,
                _divide(_steady_rate(states, "detect", size), speed(laplacian)),
                at_least=LAPLACIAN_AT_LEAST),
        ]
    return entries


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, load average and the versions that matter for the numbers.

    The load average at start says whether the machine was quiet: on a shared 2-core
    machine a run under load is not a result.
    """
    from importlib import metadata

    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(),
                            "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in handle
                                if line.startswith("model name")), None)
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except (ImportError, OSError):
        pass
    versions = {}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "apache-beam",
                    "opencv-python-headless", "scikit-image", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    info["versions"] = versions
    return info


ROW_COLUMNS = (
    ("row", lambda r: r["id"]),
    ("images", lambda r: number(r["images"])),
    ("wall s", lambda r: number(r["wall_s"], 2)),
    ("img/s (whole process)", lambda r: number(r.get("images_per_s"))),
    ("CPU s/img", lambda r: number(r.get("cpu_s_per_image"), 4)),
    ("peak RSS MB", lambda r: number(r["peak_rss_mb"])),
    ("first result s", lambda r: number(r.get("first_result_s"), 2)),
    ("to identifier", lambda r: number(r.get("identifier_images"))),
    ("status", lambda r: "FAILED" if r.get("error") else "ok"),
)
STEADY_COLUMNS = (
    ("row", lambda s: s["row"]),
    ("steady state of", lambda s: s["label"]),
    ("steady img/s", lambda s: number(s["images_per_s"])),
    ("steady CPU s/img", lambda s: number(s["cpu_s_per_image"], 4)),
)


def _target(entry: dict[str, Any]) -> str:
    """">= 10" or "<= 6": the direction matters as much as the number."""
    return f">= {entry['at_least']:g}" if entry["at_least"] is not None else (
        f"<= {entry['at_most']:g}")


RATIO_COLUMNS = (
    ("issue 17", lambda e: e["name"]),
    ("images", lambda e: number(e["images"])),
    ("value", lambda e: number(e["value"], 2)),
    ("target", _target),
    ("met?", lambda e: "-" if e["met"] is None else ("met" if e["met"] else "NOT MET")),
)


def tables(report: dict[str, Any], render: Any) -> list[str]:
    """The three tables (rows, steady state, ratios) rendered with ``render``."""
    parts = []
    for key, columns in (("rows", ROW_COLUMNS), ("steady_state", STEADY_COLUMNS),
                         ("ratios", RATIO_COLUMNS)):
        if report[key]:
            body = [[cell(item) for _, cell in columns] for item in report[key]]
            parts.append(render([name for name, _ in columns], body))
    return parts


def render_text(report: dict[str, Any]) -> str:
    """What the terminal shows at the end of a run."""
    parts = tables(report, text_table)
    if report.get("checks"):
        parts.append("checks: " + json.dumps(report["checks"]))
    return "\n\n".join(parts)


COLUMN_NOTES = [
    "wall s / img/s: the whole process, interpreter start to exit (what a user waits for)",
    "CPU s/img: user + sys of the process tree (RUSAGE_CHILDREN, so Beam's workers count)",
    "peak RSS MB: the largest sum of RSS over the process tree, sampled every 0.2 s (worker "
    "rows: or their own VmHWM if larger)",
    "first result s: detect = (summary file written - process start) - wall_seconds + "
    "first_result_seconds of its --summary-json; other rows = process start to the first "
    "image's result, clocked inside the process",
    "steady img/s: (N_large - N_small) / (T_large - T_small) of two whole-process runs of the "
    "same row: start-up and exit cancel out",
]


def render_markdown(report: dict[str, Any]) -> str:
    """The saved Markdown version of a report."""
    machine, corpus = report["machine"], report["corpus"]
    lines = [
        f"# Throughput benchmark{' (' + report['tag'] + ')' if report['tag'] else ''}", "",
        f"- date: {report['date']}",
        f"- machine: {machine['cores']} cores, {machine.get('cpu', '?')}, "
        f"{machine.get('memory_gib', '?')} GiB; load average at start "
        f"{machine['load_average_at_start']}",
        f"- command: `{report['command']}`",
        f"- corpus: first N of {corpus['count']} JPEGs, long side ~{corpus['long_side']} px, "
        f"{corpus['blurred']} partially blurred, source {corpus['source']}",
        f"- models: {report['models']['description']}", "",
    ]
    for part in tables(report, markdown_table):
        lines += [part, ""]
    lines += [f"- {note}" for note in COLUMN_NOTES + report.get("notes", [])]
    for row in report["rows"]:
        if row.get("error"):
            lines.append(f"- {row['id']} at {row['images']} FAILED: "
                         f"`{row['error'].splitlines()[-1] if row['error'] else '?'}`")
    if report.get("checks"):
        lines += ["", "Checks:", "", "```", json.dumps(report["checks"], indent=2), "```"]
    return "\n".join(lines).rstrip() + "\n"


def result_paths(results_dir: str, prefix: str, tag: str | None,
                 today: datetime.date | None = None) -> tuple[str, str]:
    """(json, md) paths: ``<prefix>-<tag or date>-<cores>cores.{json,md}``."""
    label = tag or (today or datetime.date.today()).isoformat()
    stem = f"{prefix}-{label}-{os.cpu_count()}cores"
    return os.path.join(results_dir, f"{stem}.json"), os.path.join(results_dir, f"{stem}.md")


def write_report(report: dict[str, Any], results_dir: str, prefix: str,
                 markdown: str) -> tuple[str, str]:
    """Save the report as JSON (every number) and Markdown (the tables); returns the paths."""
    os.makedirs(results_dir, exist_ok=True)
    json_path, md_path = result_paths(results_dir, prefix, report.get("tag"))
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(markdown)
    return json_path, md_path


def header(benchmark: str, tag: str | None, argv: Sequence[str]) -> dict[str, Any]:
    """What every saved report starts with: which benchmark, when, the exact command, where."""
    import shlex

    return {
        "benchmark": benchmark,
        "tag": tag,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "benchmarks.throughput", *argv]),
        "machine": machine_info(),
    }
