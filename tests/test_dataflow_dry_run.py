"""The detect job builds a complete Dataflow job offline (``--dry_run=True``), without network.

DataflowRunner with ``--dry_run=True`` does everything a real submission does up to the API
call: applies Dataflow's overrides, snapshots the portable pipeline with the worker container
image, and builds the Job request. It needs the Google Cloud client libraries (the project's
``[gcp]`` extra) but no credentials: with ``--sdk_location=container`` nothing is staged, and
gs:// paths are only named, never opened, while the graph is built.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest

pytest.importorskip("google.cloud.dataflow",
                    reason="needs the Google Cloud client libraries: pip install '.[gcp]'")

import apache_beam as beam  # noqa: E402

from beam_jobs import detect  # noqa: E402
from sbdn_pipeline import inference  # noqa: E402
from sbdn_pipeline.options import DetectOptions, make_pipeline_options  # noqa: E402
from tests import imagegen  # noqa: E402

IMAGE = "europe-west1-docker.pkg.dev/test/sbdn/sbdn:0.1.0"
DATAFLOW_ARGS = [
    "--runner=DataflowRunner", "--dry_run=True", "--project=test", "--region=us-central1",
    "--temp_location=gs://test/tmp", f"--sdk_container_image={IMAGE}",
    "--sdk_location=container",
]


@pytest.fixture()
def no_network(monkeypatch) -> list[object]:
    """Any connection or DNS lookup fails the build and is recorded."""
    attempts: list[object] = []

    def refuse_connect(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"network is disabled in this test: {address}")

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(host)
        raise socket.gaierror(f"DNS is disabled in this test: {host}")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    return attempts


def _on_gcs(info: inference.ModelInfo) -> inference.ModelInfo:
    # On Dataflow the models live in a bucket (workers cannot see the submitter's disk); the
    # hash and input size are those of the real file inspected here.
    return dataclasses.replace(info, path=f"gs://test/models/{os.path.basename(info.path)}")


def test_detect_job_builds_a_dataflow_job_offline(tiny_models, tmp_path, no_network) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(imagegen.encode(imagegen.sharp_image(64, 64, 1), "PNG"))
    classifier = _on_gcs(inference.inspect_model(tiny_models["classifier"], "classifier"))
    identifier = _on_gcs(inference.inspect_model(tiny_models["identifier"], "identifier"))
    options = DetectOptions(input=str(photos), output="gs://test/sbdn/out",
                            classifier_path=classifier.path, identifier_path=identifier.path,
                            overlays_dir="gs://test/sbdn/overlays")

    pipeline = beam.Pipeline(options=make_pipeline_options(DATAFLOW_ARGS))
    detect.build_pipeline(pipeline, options, classifier, identifier, "20261125T000000Z-dryrun")
    result = pipeline.run()

    assert no_network == []
    job = result.job  # the Dataflow Job request that a real run would send
    names = {transform.unique_name
             for transform in job.proto_pipeline.components.transforms.values()}
    for expected in ("ClassifyBlur/RunClassifier", "SegmentBlur/RunIdentifier",
                     "WriteResults/WriteParquet", "WriteErrors/WriteParquet",
                     "MatchInputs", "DecodeImages"):
        assert expected in names, f"{expected} missing from the Dataflow job graph"
    images = {env.payload for env in job.proto_pipeline.components.environments.values()}
    assert any(IMAGE.encode() in payload for payload in images), images
    # A bounded input makes a batch job (a streaming job would never finish).
    assert job.proto.type_.name == "JOB_TYPE_BATCH"
    assert job.google_cloud_options.region == "us-central1"
