"""Progress lines: rate, ETA, counts summed over worker processes, and no flooding."""

from __future__ import annotations

import io
import time

from sbdn_pipeline.progress import CountFile, ProgressMonitor, format_progress, read_counts


def test_progress_line_has_rate_and_eta() -> None:
    assert format_progress(1200, 10000, 10.0) == (
        "progress: 1,200 / 10,000 images (120.0 img/s, ETA 73 s)")
    assert format_progress(50, None, 10.0) == "progress: 50 images (5.0 img/s)"


def test_count_files_of_several_processes_add_up(tmp_path) -> None:
    now = [0.0]
    first, second = CountFile(str(tmp_path), clock=lambda: now[0]), CountFile(str(tmp_path))
    for _ in range(5):
        first.add()  # written at most every 0.5 s: only the first add reached the file
    second.add(3)
    assert read_counts(str(tmp_path)) == 1 + 3
    first.flush()
    assert read_counts(str(tmp_path)) == 5 + 3
    (tmp_path / "garbage.count").write_text("not a number")  # a half-written file is skipped
    assert read_counts(str(tmp_path)) == 8


def test_count_file_never_fails_the_run(tmp_path) -> None:
    counter = CountFile(str(tmp_path / "removed"))
    counter.add()
    counter.flush()  # the folder is gone: progress is lost, the run goes on


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_monitor_prints_a_line_per_interval_and_nothing_for_short_runs(tmp_path) -> None:
    stream = _Stream(tty=False)
    with ProgressMonitor(str(tmp_path), total=10, interval_s=0.2, stream=stream):
        time.sleep(0.1)
    assert stream.getvalue() == ""  # shorter than one interval: no line at all
    counter = CountFile(str(tmp_path))
    with ProgressMonitor(str(tmp_path), total=10, interval_s=0.2, stream=stream):
        time.sleep(0.3)
        counter.add(4)
        counter.flush()
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert 2 <= len(lines) <= 3, lines
    assert lines[0].startswith("progress: 0 / 10 images") and "starting workers" in lines[0]
    assert lines[-1].startswith("progress: 4 / 10 images")


def test_monitor_redraws_one_line_on_a_terminal(tmp_path) -> None:
    stream = _Stream(tty=True)
    with ProgressMonitor(str(tmp_path), total=None, interval_s=0.05, stream=stream):
        time.sleep(0.2)
    text = stream.getvalue()
    assert "\n" not in text and text.count("\r\033[K") >= 2 and text.endswith("\r\033[K")
