"""sbdn-pipeline: find blurry images in large photo collections and say where the blur is."""

import logging as _logging
import os as _os
import warnings as _warnings

__version__ = "0.1.0"

# TensorFlow's C++ start-up and decoder chatter ("Premature end of JPEG data", CPU feature
# notices) duplicates what our errors table already says; silence it before TF is imported.
# Set here, not in the CLI, so Beam worker processes that import this package get it too.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _DropKnownNoise(_logging.Filter):
    """Drop two harmless Beam warnings that would alarm users on every run.

    - "apitools not found": Beam probes for GCP client libraries a local run never needs.
    - "Resource module is not available": Beam 2.77's RunInference imports torch next to the
      `resource` module and, without torch, logs this on every model load.
    """

    _NOISE = ("apitools not found", "Resource module is not available")

    def filter(self, record: _logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self._NOISE)


# google-api-core (with the [gcp] extra) warns on every start about Python 3.11's end of life.
_warnings.filterwarnings("ignore", message=".*Google will stop supporting.*",
                         category=FutureWarning)

if not any(isinstance(f, _DropKnownNoise) for f in _logging.getLogger().filters):
    _logging.getLogger().addFilter(_DropKnownNoise())
