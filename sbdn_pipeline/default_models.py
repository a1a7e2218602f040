"""Where the shipped default models are, and the sha256 each must have.

`models/manifest.json` (written when a model is shipped, see models/README.md) maps each role
to its file and hash; loading refuses a file whose hash differs, so a tampered or half-copied
model is never used. In an installed package the folder is the `sbdn_models` package; in a
source checkout it is the top-level `models/` folder.
"""

from __future__ import annotations

import json
import os

from sbdn_pipeline import atomic

MANIFEST_NAME = "manifest.json"


class NoDefaultModelError(Exception):
    """No shipped model for a role (or its manifest entry is broken)."""


def models_folder() -> str:
    """The folder holding the shipped models."""
    try:
        import sbdn_models

        return os.path.dirname(os.path.abspath(sbdn_models.__file__))
    except ImportError:
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


def default_model(role: str) -> tuple[str, str]:
    """(path, expected sha256) of the shipped model for ``role`` ("classifier"/"identifier").

    Raises:
        NoDefaultModelError: when no default model is shipped for the role.
    """
    folder = models_folder()
    manifest_path = os.path.join(folder, MANIFEST_NAME)
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            entry = json.load(handle)[role]
        path = os.path.join(folder, entry["file"])
        return path, entry["sha256"]
    except FileNotFoundError:
        raise NoDefaultModelError(
            f"no --{role} given and no default models are shipped ({manifest_path} is missing)"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise NoDefaultModelError(
            f"no --{role} given and {manifest_path} has no valid '{role}' entry ({exc})"
        ) from None


def default_model_geometry(role: str) -> tuple[int, int] | None:
    """(input size, mask stride) recorded for the shipped ``role`` model, None if not recorded.

    Recorded when the model is shipped (its inspection loads it), so the machine that submits
    a job need not import TensorFlow and build the model just to learn its input size: ~6 s
    of every run whose work happens in worker processes.
    """
    path, _ = default_model(role)
    with open(os.path.join(os.path.dirname(path), MANIFEST_NAME), encoding="utf-8") as handle:
        entry = json.load(handle)[role]
    if "input_size" not in entry:
        return None
    return int(entry["input_size"]), int(entry.get("mask_stride", 1))


def ship_model(source: str, role: str, folder: str | None = None, input_size: int | None = None,
               mask_stride: int = 1) -> dict:
    """Copy a trained `.keras` file into the models folder as the default for ``role``.

    The file is named ``<role>.keras``, its sha256 is recorded in ``manifest.json`` (which the
    detect job checks before loading), and the copy is published with a rename so a reader
    never sees half a file.

    Args:
        input_size, mask_stride: the model's geometry (from ``inference.inspect_model``),
            recorded so that runs can skip loading the model on the submitting machine.

    Returns:
        The manifest entry: file name, sha256 and (when given) the geometry.
    """
    import hashlib
    import shutil

    if role not in ("classifier", "identifier"):
        raise ValueError(f"role must be 'classifier' or 'identifier', not {role!r}")
    folder = folder or models_folder()
    target = os.path.join(folder, f"{role}.keras")
    with atomic.local_path(target) as partial:
        shutil.copyfile(source, partial)
        with open(partial, "rb") as handle:
            sha256 = hashlib.sha256(handle.read()).hexdigest()
    manifest_path = os.path.join(folder, MANIFEST_NAME)
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    manifest[role] = {"file": os.path.basename(target), "sha256": sha256}
    if input_size:
        manifest[role].update(input_size=int(input_size), mask_stride=int(mask_stride))
    atomic.write_json(manifest_path, manifest, sort_keys=True, trailing_newline=True)
    return manifest[role]
