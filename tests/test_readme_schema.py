"""Drift test: the README's column tables list exactly the columns of the Parquet schemas."""

from __future__ import annotations

import pathlib
import re

import pytest

from sbdn_pipeline import schemas

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^#{1,3} ", text[start + len(heading):], flags=re.MULTILINE)
    return text[start:start + len(heading) + following.start()] if following else text[start:]


def _table_columns(section: str, table: str) -> list[str]:
    """Column names in the first cell of each row of the table after **<table>**."""
    start = section.index(f"**{table}**")
    columns = []
    in_table = False
    for line in section[start:].splitlines()[1:]:
        if line.startswith("|"):
            in_table = True
            first_cell = line.split("|")[1]
            columns += re.findall(r"`([a-z0-9_]+)`", first_cell)
        elif in_table:
            break
    return columns


@pytest.mark.parametrize(("table", "schema"), [("results", schemas.RESULTS_SCHEMA),
                                               ("errors", schemas.ERRORS_SCHEMA)])
def test_readme_lists_every_column_of_the_schema(table, schema) -> None:
    section = _section(README.read_text(encoding="utf-8"), "### Output tables")
    columns = _table_columns(section, table)
    assert columns, f"no {table} column table found in README.md's Output tables"
    assert len(columns) == len(set(columns)), f"{table}: a column is listed twice: {columns}"
    assert set(columns) == set(schema.names), (
        f"{table}: README misses {sorted(set(schema.names) - set(columns))}, "
        f"lists unknown {sorted(set(columns) - set(schema.names))}")
    assert columns == schema.names, f"{table}: README order differs from the schema's"
