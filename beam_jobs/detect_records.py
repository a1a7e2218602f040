"""What travels through the detect job: image records, error rows, run ids, counter names."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid
from typing import Any


from sbdn_pipeline import inputs, schemas
from sbdn_pipeline.inference import ImageSource


_LOGGER = logging.getLogger(__name__)
METRICS_NAMESPACE = "sbdn"
COUNTER_MATCHED = "images_matched"
COUNTER_SHARP = "images_sharp"
COUNTER_BLURRY = "images_blurry"
COUNTER_ERRORS = "images_errors"
COUNTER_SEGMENTED = "identifier_images"
COUNTER_SKIPPED = "images_skipped"
COUNTER_OVERLAYS_WRITTEN = "overlays_written"
COUNTER_OVERLAYS_FAILED = "overlays_failed"
_ERRORS_TAG = "errors"


@dataclasses.dataclass
class ImageRecord:
    """One decoded image travelling through the fused model stages."""

    uri: str
    sha256: str
    size_bytes: int
    modified_at_us: int | None
    format: str
    width: int
    height: int
    # The bytes and their decodes; each model takes the decode its own options ask for.
    # Dropped once the image's last model has run.
    source: ImageSource | None
    blur_probability: float | None = None


def new_run_id(now: datetime.datetime | None = None) -> str:
    """Sortable, unique run id: UTC time plus a random suffix, e.g. 20261125T174002Z-3f2a9c."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _timestamp(microseconds: int | None) -> datetime.datetime | None:
    """The timestamp of a row; None (NULL) when no datetime can hold it (year > 9999 or < 1).

    Never raises: one file's odd mtime must not fail the step that writes every row.
    """
    microseconds = inputs.representable_us(microseconds)
    if microseconds is None:
        return None
    return _EPOCH + datetime.timedelta(microseconds=microseconds)


def microseconds_since_epoch(value: Any) -> int | None:
    """Inverse of the timestamps we write (datetime or pandas Timestamp) -> int microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return (value - _EPOCH) // datetime.timedelta(microseconds=1)


def error_row(
    uri: str,
    stage: str,
    error_type: str,
    message: str,
    run_id: str,
    *,
    sha256: str | None = None,
    size_bytes: int | None = None,
    modified_at_us: int | None = None,
) -> dict[str, Any]:
    """A row of the errors table (schemas.ERRORS_SCHEMA)."""
    return {
        schemas.IMAGE_URI: uri,
        schemas.STAGE: stage,
        schemas.ERROR_TYPE: error_type,
        schemas.ERROR_MESSAGE: message[:2000],
        schemas.IMAGE_SHA256: sha256,
        schemas.IMAGE_SIZE_BYTES: size_bytes,
        schemas.IMAGE_MODIFIED_AT: _timestamp(modified_at_us),
        schemas.RUN_ID: run_id,
        schemas.PROCESSED_AT: _utc_now(),
    }
