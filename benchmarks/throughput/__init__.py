"""Throughput benchmark of ``sbdn detect`` (issues 5, 17, 18): ``python -m benchmarks.throughput``.

Modules, in the order a run uses them:

- ``corpus``: the JPEG corpus (photos or generated scenes, partial blur), cached; subsets.
- ``rows``: one function per measured row, each the body of its own subprocess; the detect
  command line.
- ``measurement``: subprocess timing, CPU seconds and peak RSS of the process tree; the
  steady-state arithmetic.
- ``launch``: one row at one size: run it, measure it, turn that into a report row.
- ``report``: steady state, issue-17 ratios and targets, JSON and Markdown.
- ``memory``, ``profile``: the ``--memory-mode`` and ``--profile`` modes.
- ``__main__``: options and the order of the runs.

Nothing here imports ``tests/``: the benchmark must run from an installed project.
"""
