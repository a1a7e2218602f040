"""benchmarks.select_pooling: pooling methods compared from predictions.csv files."""

from __future__ import annotations

import csv

import pytest

from benchmarks import select_pooling


def _write(folder, rows):
    folder.mkdir()
    with open(folder / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_table_ranks_a_separating_pooling_above_a_random_one(tmp_path, capsys):
    rows = [
        {"source_id": str(i), "label": i % 2, "p_mean": 0.2 + 0.6 * (i % 2), "p_max": 0.5,
         "p_global": ""}
        for i in range(10)
    ]
    _write(tmp_path / "val", rows)
    assert select_pooling.main(["--eval", f"own={tmp_path / 'val'}", "--json",
                                str(tmp_path / "t.json")]) == 0
    labels, scores = select_pooling.read_predictions(str(tmp_path / "val"))
    table = {row["pooling"]: row for row in select_pooling.pooling_table(labels, scores, 0.5)}
    assert set(table) == {"mean", "max"}  # empty columns (no global view) are skipped
    assert table["mean"]["roc_auc"] == pytest.approx(1.0) and table["mean"]["accuracy"] == 1.0
    assert table["max"]["roc_auc"] == pytest.approx(0.5)
    assert "| mean | 1.000 | 1.000 |" in capsys.readouterr().out


def test_a_folder_without_pooling_columns_is_a_clear_error(tmp_path, capsys):
    _write(tmp_path / "val", [{"source_id": "a", "label": 1}])
    assert select_pooling.main(["--eval", f"x={tmp_path / 'val'}"]) == 1
    assert "no p_<pooling> columns" in capsys.readouterr().err
