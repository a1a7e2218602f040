"""Atomic file writes: write under a temporary name next to the target, then rename.

A reader (a user, the next stage, a second run) never sees half a file: it sees the old file,
or the new one. The one home for this pattern in the project:

* ``write_bytes`` / ``write_text`` / ``write_json`` take a local path or a Beam file-system URI
  (``gs://``, ``s3://``, ...). URIs go through ``apache_beam``'s ``FileSystems`` (create, then
  rename), imported only then, so local writes do not import Beam.
* ``local_path`` is for files a library writes itself (matplotlib, PIL, Keras): it yields the
  temporary path to save to and renames it onto the target when the block ends.

On failure the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any


def _is_uri(path: str) -> bool:
    return "://" in path


def partial_name(path: str, suffix: str = "") -> str:
    """A unique temporary name next to ``path`` (``suffix`` keeps an extension libraries need)."""
    return f"{path}.{uuid.uuid4().hex}.partial{suffix}"


def write_bytes(path: str, data: bytes, *, mime_type: str | None = None) -> None:
    """Write ``data`` to ``path`` (local or URI) under a temporary name, then rename.

    ``mime_type`` is passed to ``FileSystems.create`` for URIs and ignored for local files.
    """
    if _is_uri(path):
        _write_uri(path, data, mime_type)
        return
    with local_path(path) as partial:
        with open(partial, "wb") as handle:
            handle.write(data)


def write_text(path: str, text: str, *, encoding: str = "utf-8",
               mime_type: str | None = None) -> None:
    """Write ``text`` (encoded, no newline translation) atomically; see :func:`write_bytes`."""
    write_bytes(path, text.encode(encoding), mime_type=mime_type)


def write_json(path: str, document: Any, *, indent: int | None = 2, sort_keys: bool = False,
               allow_nan: bool = True, trailing_newline: bool = False,
               mime_type: str | None = None) -> None:
    """Write ``json.dumps(document, ...)`` (UTF-8) atomically; see :func:`write_bytes`."""
    text = json.dumps(document, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan)
    write_text(path, text + "\n" if trailing_newline else text, mime_type=mime_type)


@contextlib.contextmanager
def local_path(target: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary local path; when the block ends without error, rename it to ``target``.

    For libraries that write files themselves: ``with atomic.local_path(png, ".png") as tmp:
    figure.savefig(tmp)``. ``suffix`` ends the temporary name, for libraries that choose the
    format from it (matplotlib ``.png``, Keras ``.keras`` / ``.weights.h5``). If the block
    raises, the temporary file is removed and ``target`` is untouched.
    """
    partial = partial_name(target, suffix)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            with contextlib.suppress(OSError):
                os.remove(partial)


def _write_uri(path: str, data: bytes, mime_type: str | None) -> None:
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    partial = partial_name(path)
    create = {"mime_type": mime_type} if mime_type else {}
    try:
        with FileSystems.create(partial, compression_type=CompressionTypes.UNCOMPRESSED,
                                **create) as handle:
            handle.write(data)
        # Some file systems (HDFS) refuse to rename onto an existing file.
        if FileSystems.exists(path):
            FileSystems.delete([path])
        FileSystems.rename([partial], [path])
    except Exception:
        with contextlib.suppress(Exception):  # a full disk may refuse even this
            FileSystems.delete([partial])
        raise
