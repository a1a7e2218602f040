"""Expand the INPUT argument into image URIs.

INPUT may be:
  * a local folder: every file below it, recursively (hidden files and folders, whose names
    start with ".", are skipped; so is the job's own output folder when it lies inside, also
    through a symlink; symlinked folders are not followed, and folders that cannot be read
    are reported as :class:`ListingError`);
  * a glob (``photos/**/*.jpg``, ``gs://bucket/2026-*/*.jpg``);
  * a manifest: a file ending in ``.txt``/``.lst``/``.list`` with one URI per line (blank lines and
    lines starting with ``#`` ignored; relative local paths are relative to the manifest);
  * a single image file or object URI.
Local paths are made absolute so a URI means the same file in every run.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import logging
import os
from collections.abc import Callable, Iterator


def _filesystems():  # noqa: ANN202 - Beam's FileSystems class
    """Beam's file systems, imported on first use: `sbdn summarize` on a local folder (and
    anything else that only needs ``is_remote``) should not pay for importing Beam."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


MANIFEST_SUFFIXES = (".txt", ".lst", ".list")
_GLOB_CHARS = set("*?[")
_LOGGER = logging.getLogger(__name__)


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


def _real(path: str | None) -> str | None:
    return os.path.realpath(path) if path else None


def _inside(path: str, real_folder: str | None) -> bool:
    """Whether path, once symlinks are resolved, lies in real_folder (already resolved).

    Real paths, so an output reached through a symlink (or named by one) is still excluded.
    """
    if not real_folder:
        return False
    return os.path.commonpath([os.path.realpath(path), real_folder]) == real_folder


@dataclasses.dataclass(frozen=True)
class ListingError:
    """A folder (or INPUT itself) that could not be listed: its images are unknown.

    The detect job writes one errors row for it, so an unreadable folder is never a silent gap.
    """

    uri: str
    error_type: str
    message: str


ErrorSink = Callable[[str, OSError], None]


def _scan(folder: str, on_error: ErrorSink) -> list[os.DirEntry]:
    """A folder's entries sorted by name, or [] after reporting why it cannot be read."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        on_error(folder, exc)
        return []


def _is_dir(entry: os.DirEntry, follow_symlinks: bool = True) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:  # a symlink loop: not a folder (it is reported when read)
        return False


def _walk_folder(folder: str, exclude: str | None, on_error: ErrorSink) -> Iterator[str]:
    """Files below folder, top-down in name order; symlinked folders are not followed."""
    stack = [folder]
    while stack:  # a stack, not recursion: deep trees must not hit the recursion limit
        current = stack.pop()
        subfolders = []
        for entry in _scan(current, on_error):
            if entry.name.startswith("."):
                continue
            path = os.path.join(current, entry.name)
            if _is_dir(entry):
                # A symlinked folder is not followed (loops); our own output is skipped.
                if not entry.is_symlink() and not _inside(path, exclude):
                    subfolders.append(path)
            elif not (entry.is_symlink() and _inside(path, exclude)):
                yield os.path.abspath(path)
        stack.extend(reversed(subfolders))


def _read_manifest(manifest: str, exclude: str | None) -> Iterator[str]:
    base = os.path.dirname(os.path.abspath(manifest)) if not is_remote(manifest) else ""
    with _filesystems().open(manifest, compression_type="uncompressed") as handle:
        for raw in handle.read().decode("utf-8-sig").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if is_remote(line):
                yield line
                continue
            path = os.path.abspath(os.path.join(base, line) if base else line)
            if not _inside(path, exclude):
                yield path


def _glob_candidates(pattern: str, on_error: ErrorSink) -> Iterator[str]:
    """Paths matching a local glob, like glob.iglob(recursive=True) with two differences.

    ``**`` does not follow symlinked folders (glob's does: a link to "." repeats every file
    40 times), and folders that cannot be read are reported, not silently skipped.
    """
    parts = os.path.abspath(pattern).split(os.sep)
    literal = next(i for i, part in enumerate(parts) if _is_glob(part))
    base, parts = os.sep.join(parts[:literal]) or os.sep, parts[literal:]
    stack = [(base, 0)]
    while stack:
        folder, index = stack.pop()
        if index == len(parts):
            yield folder
            continue
        part, last = parts[index], index == len(parts) - 1
        if not _is_glob(part):
            stack.append((os.path.join(folder, part), index + 1))
            continue
        if not os.path.isdir(folder):
            continue
        for entry in _scan(folder, on_error):
            if entry.name.startswith(".") and not part.startswith("."):
                continue  # like glob: hidden names only match patterns that start with "."
            if part == "**":
                if _is_dir(entry, follow_symlinks=False):
                    stack.append((entry.path, index))  # one more folder level
                elif last:
                    stack.append((entry.path, index + 1))
            elif fnmatch.fnmatchcase(entry.name, part) and (last or _is_dir(entry)):
                stack.append((entry.path, index + 1))
        if part == "**":
            stack.append((folder, index + 1))  # zero folder levels


def _match_glob(pattern: str, exclude: str | None, on_error: ErrorSink) -> Iterator[str]:
    if is_remote(pattern):
        for match in _filesystems().match([pattern])[0].metadata_list:
            yield match.path
        return
    for path in sorted(set(_glob_candidates(pattern, on_error))):
        # lexists, not isfile: a broken symlink is still an input and gets an errors row.
        if os.path.isdir(path) or not os.path.lexists(path) or _inside(path, exclude):
            continue
        yield os.path.abspath(path)


def list_input(input_spec: str, exclude: str | None = None) -> Iterator[str | ListingError]:
    """Yield every image URI that INPUT stands for, in a stable order, and what failed.

    Folders that cannot be listed (permissions, I/O errors) come as ListingError items,
    after the URIs of the folders that could.

    Args:
        input_spec: folder, glob, manifest or single file (local or remote).
        exclude: a local folder whose files are never inputs (the job's own output); compared
            by real path, so symlinks to it or inside it do not bring its files back.
    """
    failures: dict[str, ListingError] = {}  # by folder: a "**" glob may scan one twice

    def on_error(folder: str, exc: OSError) -> None:
        folder = os.path.abspath(folder)
        failures.setdefault(folder, ListingError(folder, "unreadable_folder",
                                                 f"cannot list folder: {exc}"))

    real_exclude = _real(exclude)
    if is_manifest(input_spec):
        yield from _read_manifest(input_spec, real_exclude)
    elif not is_remote(input_spec) and os.path.isdir(input_spec):
        yield from _walk_folder(input_spec, real_exclude, on_error)
    elif _is_glob(input_spec):
        yield from _match_glob(input_spec, real_exclude, on_error)
    elif is_remote(input_spec) and input_spec.endswith("/"):
        yield from _match_glob(input_spec + "**", real_exclude, on_error)
    elif is_remote(input_spec):
        yield input_spec
    else:
        yield os.path.abspath(input_spec)
    yield from failures.values()


def expand_input(input_spec: str, exclude: str | None = None) -> Iterator[str]:
    """The image URIs of :func:`list_input`; folders that cannot be listed are logged."""
    for item in list_input(input_spec, exclude):
        if isinstance(item, ListingError):
            _LOGGER.warning("%s: %s", item.uri, item.message)
        else:
            yield item


def check_input(input_spec: str, exclude: str | None = None) -> None:
    """Fail fast, before any work starts, when INPUT matches nothing.

    Raises:
        InputError: with a one-line reason.
    """
    if is_manifest(input_spec):
        if not _filesystems().exists(input_spec):
            raise InputError(f"manifest '{input_spec}' does not exist")
    elif not is_remote(input_spec) and not _is_glob(input_spec):
        if not os.path.lexists(input_spec):
            raise InputError(f"input '{input_spec}' does not exist")
    try:
        first = next(iter(list_input(input_spec, exclude)), None)
    except Exception as exc:  # noqa: BLE001 - listing errors from any file system
        raise InputError(f"cannot list input '{input_spec}': {exc}") from exc
    if first is None:
        raise InputError(f"input '{input_spec}' matched no files")
    if isinstance(first, ListingError) and first.uri == os.path.abspath(input_spec):
        # INPUT itself cannot be read: nothing at all would be processed.
        raise InputError(f"cannot list input '{input_spec}': {first.message}")


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


# Timestamps the tables can hold (Python datetimes: years 1-9999), in microseconds.
_MIN_US = (datetime.datetime.min - datetime.datetime(1970, 1, 1)) // datetime.timedelta(
    microseconds=1)
_MAX_US = (datetime.datetime.max - datetime.datetime(1970, 1, 1)) // datetime.timedelta(
    microseconds=1)


def representable_us(microseconds: int | None) -> int | None:
    """The value, or None when no timestamp column can hold it (e.g. an mtime in year 14645).

    Such an mtime becomes image_modified_at NULL rather than a clamped, invented date; the
    version key of --skip-existing is then (size, None) on both sides, so it still matches.
    """
    if microseconds is None or not _MIN_US <= microseconds <= _MAX_US:
        return None
    return microseconds


def _remote_mtime_us(seconds: float | None) -> int | None:
    try:
        return representable_us(int(round(seconds * 1_000_000))) if seconds else None
    except (OverflowError, ValueError):  # inf or NaN from an odd object store
        return None


def stat_input(uri: str) -> InputFile:
    """Size and modification time of one input, from the file system's metadata only."""
    try:
        if is_remote(uri):
            metadata = _filesystems().match([uri], limits=[1])[0].metadata_list[0]
            return InputFile(uri, int(metadata.size_in_bytes),
                             _remote_mtime_us(metadata.last_updated_in_seconds))
        status = os.stat(uri)
        return InputFile(uri, int(status.st_size), representable_us(status.st_mtime_ns // 1000))
    except Exception:  # noqa: BLE001 - missing/unreadable: the read step reports why
        return InputFile(uri, None, None)
