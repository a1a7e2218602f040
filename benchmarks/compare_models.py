"""Side-by-side tables of several `sbdn evaluate` runs on the same split (issue 4's table).

Each ``--eval LABEL=DIR`` names one evaluation folder (its ``metrics.json``). The classifier
and identifier of every run become one row each; every classic baseline of the registry
(``sbdn_pipeline.training.baselines``: blur effect, Laplacian variance, LBP mean; Laplacian
energy, LBP map, all-blurred) gets a row too, taken from the first run that has it (they do
not depend on the models). An evaluation with a cross-recipe split (``sbdn evaluate
--cross-recipe``) gives one set of tables per data set ("own", "cross-recipe"). Optionally,
``--speed FILE`` adds raw model speed from ``benchmarks/model_speed.py --json FILE`` by
architecture name.

Usage:
    python -m benchmarks.compare_models --eval shipped=eval/shipped \\
        --eval originals=eval/originals [--speed benchmarks/results/model-speed.json] \\
        [--markdown table.md]

All runs must have evaluated the same data and split (per data set); the command stops if
they did not.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.tables import markdown_table, number
from sbdn_pipeline.architectures import ARCHITECTURES
from sbdn_pipeline.training import baselines

BLUR_KINDS = ("defocus", "gaussian", "mixture", "motion", "shake")
# metrics.json records the class name; tables and model_speed.py use the registry name.
ARCHITECTURE_NAMES = {cls.__name__: name for name, cls in ARCHITECTURES.items()}


def load_evaluation(directory: str) -> dict[str, Any]:
    """The metrics.json of one `sbdn evaluate` output folder."""
    path = os.path.join(directory, "metrics.json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise SystemExit(f"{path} not found: is {directory} an `sbdn evaluate --out` folder?")


def by_data_set(evaluations: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{data set name: {label: metrics}}: a cross-recipe evaluation has two data sets; a
    plain one is its own data set, named by ``data.name`` ("own" when it has none)."""
    sections: dict[str, dict[str, dict[str, Any]]] = {}
    for label, metrics in evaluations.items():
        parts = metrics.get("datasets") or {metrics["data"].get("name") or "own": metrics}
        for name, part in parts.items():
            sections.setdefault(name, {})[label] = part
    return sections


def check_same_data(evaluations: dict[str, dict[str, Any]]) -> None:
    """Refuse to put runs on different data or splits in one table."""
    seen = {
        label: (
            m["data"].get("path"),
            m["data"].get("split"),
            m["data"].get("n", m["data"].get("files")),
        )
        for label, m in evaluations.items()
    }
    if len(set(seen.values())) > 1:
        details = ", ".join(f"{label}: {value}" for label, value in seen.items())
        raise SystemExit(f"the evaluations cover different data ({details})")


def _fmt(value: float | None, digits: int = 3) -> str:
    """Metrics always with ``digits`` decimals (an int 1 is 1.000); blank when missing."""
    return number(None if value is None else float(value), digits, missing="")


def blur_kinds(evaluations: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    """The blur kinds of the evaluated split (each preset has its own), "none" left out."""
    found = {
        kind
        for metrics in evaluations.values()
        for role, key in (("classifier", "accuracy_per_blur_kind"), ("identifier", "per_blur_kind"))
        for kind in (metrics.get(role) or {}).get(key, {})
        if kind != "none"
    }
    return tuple(sorted(found)) or BLUR_KINDS


def _classifier_row(name: str, result: dict[str, Any], speed: str,
                    kinds: Sequence[str] = BLUR_KINDS) -> list[str]:
    per_kind = result.get("accuracy_per_blur_kind", {})
    return (
        [name]
        + [_fmt(result.get(key)) for key in ("accuracy", "roc_auc", "precision", "recall")]
        + [_fmt(per_kind.get(kind, {}).get("accuracy"), 2) for kind in (*kinds, "none")]
        + [speed]
    )


def _identifier_row(name: str, result: dict[str, Any], speed: str,
                    kinds: Sequence[str] = BLUR_KINDS) -> list[str]:
    per_kind = result.get("per_blur_kind", {})
    return (
        [name]
        + [_fmt(result.get(key)) for key in ("max_f_beta", "f_beta", "iou", "mae")]
        + [_fmt(per_kind.get(kind, {}).get("iou"), 2) for kind in kinds]
        + [speed]
    )


def _model_rows(
    evaluations: dict[str, dict[str, Any]],
    speeds: dict[str, float],
    role: str,
    make_row: Callable[[str, dict[str, Any], str], list[str]],
) -> list[list[str]]:
    """One row per evaluated model of ``role``."""
    rows = []
    for label, metrics in evaluations.items():
        result = metrics.get(role)
        if not result:
            continue
        architecture = metrics.get("models", {}).get(role, {}).get("architecture", "")
        arch = ARCHITECTURE_NAMES.get(architecture, architecture or "?")
        speed = speeds.get(arch)
        rows.append(make_row(f"{label}: `{arch}`", result, "" if speed is None else f"{speed:.1f}"))
    return rows


def _baseline_rows(
    evaluations: dict[str, dict[str, Any]],
    registered: list[baselines.Baseline],
    make_row: Callable[[str, dict[str, Any], str], list[str]],
) -> list[list[str]]:
    """One row per registered baseline, from the first run that has it (baselines do not
    depend on the models)."""
    rows = []
    for baseline in registered:
        found = next((m[baseline.name] for m in evaluations.values() if m.get(baseline.name)), None)
        if not found:
            continue
        name = f"baseline `{baseline.name}`"
        calibration = found.get("threshold_calibration")
        if calibration:
            name += f" (threshold fit on {calibration.get('split', 'val')})"
        rows.append(make_row(name, found, ""))
    return rows


def classifier_rows(
    evaluations: dict[str, dict[str, Any]], speeds: dict[str, float],
    kinds: Sequence[str] = BLUR_KINDS,
) -> list[list[str]]:
    """One row per evaluated classifier, then one per image-level baseline."""
    row = functools.partial(_classifier_row, kinds=kinds)
    return _model_rows(evaluations, speeds, "classifier", row) + _baseline_rows(
        evaluations, baselines.image_level_baselines(), row
    )


def identifier_rows(
    evaluations: dict[str, dict[str, Any]], speeds: dict[str, float],
    kinds: Sequence[str] = BLUR_KINDS,
) -> list[list[str]]:
    """One row per evaluated identifier, then one per blur-map baseline."""
    row = functools.partial(_identifier_row, kinds=kinds)
    return _model_rows(evaluations, speeds, "identifier", row) + _baseline_rows(
        evaluations, baselines.map_baselines(), row
    )


def _data_line(data: dict[str, Any]) -> str:
    if "split" not in data:  # folder mode
        return f"Folder `{data.get('path')}`: {data.get('files')} files."
    return (
        f"Split `{data.get('split')}` of `{data.get('path')}`: {data.get('n')} images "
        f"({data.get('positives')} blurred)."
    )


def data_set_markdown(
    evaluations: dict[str, dict[str, Any]], speeds: dict[str, float]
) -> list[str]:
    """The tables of one data set (every evaluation must cover the same data)."""
    check_same_data(evaluations)
    data = next(iter(evaluations.values()))["data"]
    kinds = blur_kinds(evaluations)
    classifier_header = ["classifier", "accuracy", "ROC AUC", "precision", "recall"]
    classifier_header += [f"acc {kind}" for kind in kinds] + ["acc sharp", "img/s"]
    identifier_header = ["identifier (blurred images)", "max-F-beta", "F-beta@0.5", "IoU@0.5"]
    identifier_header += ["MAE", *[f"IoU {kind}" for kind in kinds], "img/s"]
    parts = [
        f"{_data_line(data)} img/s: raw model speed (model_speed.py).",
        "",
        markdown_table(classifier_header, classifier_rows(evaluations, speeds, kinds)),
        "",
        markdown_table(identifier_header, identifier_rows(evaluations, speeds, kinds)),
    ]
    end_to_end = [
        [label, *(_fmt(m["end_to_end"]["models"].get(key)) for key in ("max_f_beta", "iou", "mae"))]
        for label, m in evaluations.items()
        if m.get("end_to_end", {}).get("models")
    ]
    pair = next(
        (m["end_to_end"]["baselines"] for m in evaluations.values()
         if m.get("end_to_end", {}).get("baselines")),
        None,
    )
    if pair and end_to_end:
        names = pair.get("pair", ["laplacian-variance", "laplacian-energy"])
        name = "baselines: " + " + ".join(names)
        end_to_end.append([name, *(_fmt(pair.get(key)) for key in ("max_f_beta", "iou", "mae"))])
    if end_to_end:
        header = ["end to end (classifier gate + identifier, all images)", "max-F-beta", "IoU@0.5"]
        parts += ["", markdown_table([*header, "MAE"], end_to_end)]
    return parts


def comparison_markdown(
    evaluations: dict[str, dict[str, Any]], speeds: dict[str, float] | None = None
) -> str:
    """The tables as markdown, per data set (own, cross-recipe), with the data they cover."""
    sections = by_data_set(evaluations)
    parts: list[str] = []
    for name, section in sections.items():
        if len(sections) > 1:
            parts += [f"### {name}", ""]
        parts += data_set_markdown(section, speeds or {}) + [""]
    return "\n".join(parts).rstrip("\n") + "\n"


def load_speeds(path: str | None) -> dict[str, float]:
    """Median img/s per architecture from a model_speed.py --json file."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        results = json.load(handle)
    rows = results.get("results", results) if isinstance(results, dict) else results
    return {row["arch"]: row["img_per_s_median"] for row in rows}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument("--speed", help="JSON written by benchmarks/model_speed.py --json")
    parser.add_argument("--markdown", help="Also write the tables to this file.")
    args = parser.parse_args(argv)
    evaluations = {}
    for item in args.eval:
        label, separator, directory = item.partition("=")
        if not separator or not label or not directory:
            parser.error(f"--eval wants LABEL=DIR, got {item!r}")
        evaluations[label] = load_evaluation(directory)
    text = comparison_markdown(evaluations, load_speeds(args.speed))
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
