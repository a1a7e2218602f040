"""Expand the INPUT argument into image URIs.

INPUT may be:
  * a local folder: every file below it, recursively (hidden files and folders, whose names
    start with ".", are skipped; so is the job's own output folder when it lies inside);
  * a glob (``photos/**/*.jpg``, ``gs://bucket/2026-*/*.jpg``);
  * a manifest: a file ending in ``.txt``/``.lst``/``.list`` with one URI per line (blank lines and
    lines starting with ``#`` ignored; relative local paths are relative to the manifest);
  * a single image file or object URI.
Local paths are made absolute so a URI means the same file in every run.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems

MANIFEST_SUFFIXES = (".txt", ".lst", ".list")
_GLOB_CHARS = set("*?[")


class InputError(Exception):
    """INPUT matches nothing or cannot be read."""


def is_remote(uri: str) -> bool:
    """True for URIs with a scheme (gs://, s3://, ...), handled by Beam's file systems."""
    return "://" in uri


def _is_glob(path: str) -> bool:
    return any(char in _GLOB_CHARS for char in path)


def is_manifest(path: str) -> bool:
    """A manifest is a listing of URIs, recognised by its suffix."""
    return path.lower().endswith(MANIFEST_SUFFIXES) and not _is_glob(path)


def _inside(path: str, folder: str | None) -> bool:
    if not folder:
        return False
    folder = os.path.abspath(folder)
    return os.path.commonpath([os.path.abspath(path), folder]) == folder


def _walk_folder(folder: str, exclude: str | None) -> Iterator[str]:
    for root, dirs, files in os.walk(folder, followlinks=False):
        # Sorted, so runs list files in a stable order; hidden folders and our output are skipped.
        dirs[:] = sorted(
            name
            for name in dirs
            if not name.startswith(".") and not _inside(os.path.join(root, name), exclude)
        )
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.abspath(os.path.join(root, name))


def _read_manifest(manifest: str) -> Iterator[str]:
    base = os.path.dirname(os.path.abspath(manifest)) if not is_remote(manifest) else ""
    with FileSystems.open(manifest, compression_type="uncompressed") as handle:
        for raw in handle.read().decode("utf-8-sig").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not is_remote(line) and not os.path.isabs(line) and base:
                line = os.path.join(base, line)
            yield line if is_remote(line) else os.path.abspath(line)


def _match_glob(pattern: str, exclude: str | None) -> Iterator[str]:
    if is_remote(pattern):
        for match in FileSystems.match([pattern])[0].metadata_list:
            yield match.path
        return
    for path in sorted(glob.iglob(pattern, recursive=True)):
        # lexists, not isfile: a broken symlink is still an input and gets an errors row.
        if os.path.isdir(path) or not os.path.lexists(path) or _inside(path, exclude):
            continue
        yield os.path.abspath(path)


def expand_input(input_spec: str, exclude: str | None = None) -> Iterator[str]:
    """Yield every image URI that INPUT stands for, in a stable order.

    Args:
        input_spec: folder, glob, manifest or single file (local or remote).
        exclude: a local folder whose files are never inputs (the job's own output).
    """
    if is_manifest(input_spec):
        yield from _read_manifest(input_spec)
    elif not is_remote(input_spec) and os.path.isdir(input_spec):
        yield from _walk_folder(input_spec, exclude)
    elif _is_glob(input_spec):
        yield from _match_glob(input_spec, exclude)
    elif is_remote(input_spec) and input_spec.endswith("/"):
        yield from _match_glob(input_spec + "**", exclude)
    elif is_remote(input_spec):
        yield input_spec
    else:
        yield os.path.abspath(input_spec)


def check_input(input_spec: str, exclude: str | None = None) -> None:
    """Fail fast, before any work starts, when INPUT matches nothing.

    Raises:
        InputError: with a one-line reason.
    """
    if is_manifest(input_spec):
        if not FileSystems.exists(input_spec):
            raise InputError(f"manifest '{input_spec}' does not exist")
    elif not is_remote(input_spec) and not _is_glob(input_spec):
        if not os.path.lexists(input_spec):
            raise InputError(f"input '{input_spec}' does not exist")
    try:
        first = next(iter(expand_input(input_spec, exclude)), None)
    except Exception as exc:  # noqa: BLE001 - listing errors from any file system
        raise InputError(f"cannot list input '{input_spec}': {exc}") from exc
    if first is None:
        raise InputError(f"input '{input_spec}' matched no files")


@dataclasses.dataclass(frozen=True)
class InputFile:
    """An input URI with what the file system says about it (None when it cannot say).

    Attributes:
        uri: the image URI.
        size_bytes: file size.
        modified_at_us: last-modified time, microseconds since the Unix epoch (UTC).
    """

    uri: str
    size_bytes: int | None
    modified_at_us: int | None

    @property
    def version_key(self) -> tuple[int | None, int | None]:
        """What tells two versions of the same URI apart without reading the file."""
        return (self.size_bytes, self.modified_at_us)


def stat_input(uri: str) -> InputFile:
    """Size and modification time of one input, from the file system's metadata only."""
    try:
        if is_remote(uri):
            metadata = FileSystems.match([uri], limits=[1])[0].metadata_list[0]
            seconds = metadata.last_updated_in_seconds
            return InputFile(uri, int(metadata.size_in_bytes),
                             int(round(seconds * 1_000_000)) if seconds else None)
        status = os.stat(uri)
        return InputFile(uri, int(status.st_size), status.st_mtime_ns // 1000)
    except Exception:  # noqa: BLE001 - missing/unreadable: the read step reports why
        return InputFile(uri, None, None)
