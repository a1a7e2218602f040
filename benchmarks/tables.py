"""Table helpers shared by the benchmark reports (throughput, compare_models).

Kept in one place so every saved report renders numbers and tables the same way, and a fix to
the Markdown output (escaping, alignment) reaches all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def number(value: Any, digits: int = 1, missing: str = "-") -> str:
    """``value`` with ``digits`` decimals; ints stay ints; ``missing`` for None.

    A missing measurement must read as missing, never as 0, or a failed row would look fast.
    """
    if value is None:
        return missing
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table (the format of every saved report and the READMEs)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A column-aligned plain-text table for the terminal (Markdown pipes are hard to scan)."""
    widths = [
        max([len(header), *(len(row[index]) for row in rows)])
        for index, header in enumerate(headers)
    ]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)
