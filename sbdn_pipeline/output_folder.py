"""The detect job's output folder: may a run write here, under which name, and one at a time.

OUT holds a marker (``_sbdn_output.json``), one ``run_id=...`` folder per run and table, a
staging area and, while a run writes, a lock file. Checks here are cheap (no Beam pipeline, no
models) so the CLI runs them before anything slow starts.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
import uuid
from collections.abc import Iterator

from sbdn_pipeline import inputs, schemas

LOCK_FILE = ".sbdn.lock"


class OutputError(Exception):
    """OUT cannot take this run; the message is one line for the user."""


class OutputLockedError(OutputError):
    """Another run is writing to OUT right now."""


class RunExistsError(OutputError):
    """OUT already has a run of this id (and the caller did not ask to replace it)."""


def check_output(output: str, overlays_dir: str = "") -> None:
    """Refuse, before any work starts, an output (and overlays folder) a run cannot use.

    Raises:
        OutputError: see ``check_local_output``; a cloud folder with other files and no
            marker; an overlays path that is a file or cannot be written.
    """
    if inputs.is_remote(output):
        _check_remote_output(output)
    else:
        check_local_output(output)
    if overlays_dir and not inputs.is_remote(overlays_dir):
        if os.path.exists(overlays_dir) and not os.path.isdir(overlays_dir):
            raise OutputError(f"--overlays '{overlays_dir}' exists and is not a folder")
        try:
            check_writable(overlays_dir)
        except OutputError as exc:
            raise OutputError(f"--overlays: {exc}") from exc


def _check_remote_output(output: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    if FileSystems.exists(output.rstrip("/") + "/") and not FileSystems.exists(
            FileSystems.join(output, schemas.OUTPUT_MARKER)):
        listing = FileSystems.match([FileSystems.join(output, "*")], limits=[1])[0]
        if listing.metadata_list:
            raise OutputError(f"output '{output}' exists and is not an sbdn output folder")


def check_local_output(output: str) -> None:
    """Refuse outputs that cannot be an sbdn output folder, before any work starts.

    Raises:
        OutputError: empty path, a path under a file, an existing non-sbdn folder, or a
            folder this process may not write.
    """
    if not output.strip():
        raise OutputError("--output is empty; give a folder")
    parent = _existing_ancestor(output)
    if not os.path.isdir(parent):
        raise OutputError(f"output '{output}' lies under '{parent}', which is a file")
    if os.path.exists(output) and not os.path.isdir(output):
        raise OutputError(f"output '{output}' exists and is not a folder")
    # The lock file alone: a first run on this folder holds it and has not written yet.
    entries = [name for name in os.listdir(output) if name != LOCK_FILE] if os.path.isdir(
        output) else []
    if entries and not os.path.exists(os.path.join(output, schemas.OUTPUT_MARKER)):
        raise OutputError(
            f"output '{output}' exists, is not empty and is not an sbdn output folder "
            f"(no {schemas.OUTPUT_MARKER}); choose a new or empty folder")
    check_writable(output)


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def check_writable(folder: str) -> None:
    """Write and delete a probe file in ``folder`` (or its nearest existing ancestor).

    ``os.access`` is not enough: it says yes to root on read-only mounts.

    Raises:
        OutputError: the folder cannot be written (read-only, permissions, disk full).
    """
    target = folder if os.path.isdir(folder) else _existing_ancestor(folder)
    probe = os.path.join(target, f".sbdn-probe-{uuid.uuid4().hex}")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"probe")
        os.remove(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to '{target}': {exc.strerror or exc}") from exc


def run_exists(output: str, run_id: str) -> bool:
    """True when OUT has results or errors of a run named ``run_id``."""
    from apache_beam.io.filesystems import FileSystems

    return any(FileSystems.exists(FileSystems.join(output, table,
                                                   f"{schemas.RUN_FOLDER_PREFIX}{run_id}"))
               for table in (schemas.RESULTS_DIR, schemas.ERRORS_DIR))


def check_new_run(output: str, run_id: str, overwrite: bool) -> None:
    """Refuse to reuse a run id unless asked to replace that run.

    Raises:
        RunExistsError: OUT already has run ``run_id`` and ``overwrite`` is false.
    """
    if run_id and not overwrite and run_exists(output, run_id):
        raise RunExistsError(
            f"output '{output}' already has a run '{run_id}'; choose another --run-id, leave "
            "it out for a new one, or add --overwrite-run to replace that run")


@contextlib.contextmanager
def output_lock(output: str, run_id: str) -> Iterator[None]:
    """Hold OUT for one run: a second run on the same folder fails at once.

    Local folders use an advisory ``flock`` on ``OUT/.sbdn.lock``; the kernel releases it when
    the process ends, so a killed run leaves no stale lock. Cloud outputs are not locked
    (object stores have no such lock): schedule runs on one bucket prefix one after another.

    Raises:
        OutputLockedError: another process holds the lock.
    """
    if inputs.is_remote(output):
        yield
        return
    import fcntl

    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, LOCK_FILE)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise OutputLockedError(
                f"another sbdn run is writing to '{output}' ({_holder(path)}); wait for it "
                "to finish or choose another --output") from exc
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "since": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode("utf-8"), 0)
        yield
    finally:
        os.close(descriptor)  # closing releases the flock


def check_unlocked(output: str) -> None:
    """Fail early (before models load) when another run holds OUT; ``output_lock`` decides.

    Raises:
        OutputLockedError: another process holds the lock right now.
    """
    if inputs.is_remote(output) or not os.path.exists(os.path.join(output, LOCK_FILE)):
        return
    with output_lock(output, ""):
        pass


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            holder = json.load(handle)
        return f"run {holder['run_id'] or '(new)'}, pid {holder['pid']} on {holder['host']}"
    except (OSError, ValueError, KeyError):
        return "unknown run"
