"""Progress lines: rate, ETA, and no flooding."""

from __future__ import annotations

import io

from sbdn_pipeline.progress import ProgressReporter, format_progress


def test_progress_line_has_rate_and_eta() -> None:
    assert format_progress(1200, 10000, 10.0) == (
        "progress: 1,200 / 10,000 images (120.0 img/s, ETA 73 s)")
    assert format_progress(50, None, 10.0) == "progress: 50 images (5.0 img/s)"


def test_reporter_prints_at_most_once_per_interval() -> None:
    now = [0.0]
    stream = io.StringIO()
    reporter = ProgressReporter(total=100, interval_s=10, stream=stream, clock=lambda: now[0])
    for _ in range(50):  # 50 images within 5 s: no line yet
        now[0] += 0.1
        reporter.update()
    assert stream.getvalue() == ""
    for _ in range(50):  # the next 5.5 s cross the 10 s mark once
        now[0] += 0.11
        reporter.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("progress: 96 / 100 images")  # at 10.06 s
