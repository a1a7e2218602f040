"""Shared fixtures: tiny real Keras models and small generated images (no shared data)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests import imagegen  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A Laplacian-energy classifier and identifier saved as .keras files (see imagegen)."""
    folder = tmp_path_factory.mktemp("models")
    return imagegen.save_tiny_models(str(folder))


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A folder of sharp, blurred, half-blurred, odd-format and corrupt images."""
    folder = tmp_path_factory.mktemp("images")
    return imagegen.write_mixed_folder(str(folder))


@pytest.fixture(autouse=True)
def _restore_log_settings():
    """`sbdn` commands run in process set log levels and worker env vars: undo after each test."""
    import logging

    from sbdn_pipeline import logs

    names = ("", *logs.LIBRARY_LOGGERS)
    levels = {name: logging.getLogger(name).level for name in names}
    env = {name: os.environ.get(name) for name in ("PYTHONWARNINGS", "TF_CPP_MIN_LOG_LEVEL")}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
