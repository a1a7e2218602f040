"""What a run prints: the tool's own lines by default, library chatter only with --verbose.

Beam, TensorFlow and the Google clients log warnings that say nothing to a user of this tool
(worker start-up notes, Python end-of-life notices, unparsed internal flags). They are hidden
unless --verbose, in this process and, through the environment, in local worker processes
(which Beam starts with this process's environment).
"""

from __future__ import annotations

import logging
import os
import warnings

# Loggers of the libraries we build on; errors from them still show.
LIBRARY_LOGGERS = ("apache_beam", "tensorflow", "absl", "google", "urllib3", "keras", "h5py",
                   "distributed", "dask", "py4j", "pyspark")
# Warnings the Google clients and Beam raise at import, in every process.
_IMPORT_WARNINGS = ("You are using a Python version", "Google will stop supporting")
_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure(verbose: bool = False, quiet: bool = False) -> None:
    """Set log levels for a command run (call before Beam or TensorFlow are imported).

    Args:
        verbose: show library warnings and INFO lines of this tool.
        quiet: only errors (for cron jobs).
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=_FORMAT)
    root.setLevel(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)
    library_level = logging.WARNING if verbose else logging.ERROR
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    if verbose:
        os.environ.pop("PYTHONWARNINGS", None)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"
        return
    for message in _IMPORT_WARNINGS:
        warnings.filterwarnings("ignore", message=f".*{message}.*", category=FutureWarning)
    # Worker processes read this at start-up, before any import (PYTHONWARNINGS matches a
    # message prefix).
    os.environ["PYTHONWARNINGS"] = ",".join(
        f"ignore:{message}:FutureWarning" for message in _IMPORT_WARNINGS[:1])
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
