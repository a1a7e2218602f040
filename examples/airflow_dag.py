"""Airflow DAG: a daily incremental blur detection on Dataflow, then the day's HTML report.

Every night ``detect`` runs ``sbdn detect --skip-existing`` over the photo bucket: only images
that are new or changed since earlier runs are processed (same URI, size and modification time
means done), so a run costs as much as the day's new photos. Each run writes its own
``run_id=<date>`` folder under OUT. ``report`` then rewrites one self-contained HTML page for
the whole output folder.

Requirements on the Airflow workers:
  * apache-airflow >= 2.8 with apache-airflow-providers-apache-beam and
    apache-airflow-providers-google;
  * sbdn-pipeline[gcp] installed in the interpreter the operator uses (the same release as the
    worker image), and ``sbdn_detect_entrypoint.py`` next to this file;
  * credentials for the bucket and Dataflow (the Airflow connection or the VM's service account).

The worker image is built from the project's Dockerfile and pushed to IMAGE (docs/cluster.md).
``sbdn detect`` waits for the Dataflow job and exits non-zero when it fails, when counts do not
add up, or when more than --max-error-fraction of the images fail, so the task fails with it.
"""

from __future__ import annotations

import datetime
import os

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.providers.google.cloud.operators.dataflow import DataflowConfiguration

PROJECT = "my-project"
REGION = "europe-west1"
BUCKET = "my-photo-bucket"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/sbdn/sbdn:0.1.0"

PHOTOS = f"gs://{BUCKET}/photos/"
OUT = f"gs://{BUCKET}/sbdn/"
OVERLAYS = f"gs://{BUCKET}/sbdn-overlays/"
MODELS = f"gs://{BUCKET}/models"
ENTRYPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "sbdn_detect_entrypoint.py")

with DAG(
    dag_id="sbdn_daily_detect",
    description="Daily incremental blur detection (sbdn detect --skip-existing) and report",
    schedule="15 2 * * *",
    start_date=datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    # Two runs at once would both process the same new images.
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(minutes=15)},
    tags=["sbdn", "dataflow"],
) as dag:
    detect = BeamRunPythonPipelineOperator(
        task_id="detect",
        runner="DataflowRunner",
        py_file=ENTRYPOINT,
        # Flags for sbdn detect and for Beam; True means a bare flag (--skip-existing).
        pipeline_options={
            "input": PHOTOS,
            "output": OUT,
            "classifier": f"{MODELS}/classifier.keras",
            "identifier": f"{MODELS}/identifier.keras",
            "overlays": OVERLAYS,
            "skip-existing": True,
            # One run folder per day and attempt: run_id=20261125-1, ...
            "run-id": "{{ ds_nodash }}-{{ ti.try_number }}",
            "temp_location": f"gs://{BUCKET}/tmp",
            "sdk_container_image": IMAGE,
            "sdk_location": "container",
            "machine_type": "n2-standard-8",
            "max_num_workers": 20,
        },
        dataflow_config=DataflowConfiguration(
            job_name="sbdn-detect-{{ ds_nodash }}",
            project_id=PROJECT,
            location=REGION,
            wait_until_finished=True,
        ),
    )

    # The day's page for the whole output folder (every run), and the totals in the task log.
    report = BashOperator(
        task_id="report",
        bash_command=(
            f"sbdn report {OUT} --html gs://{BUCKET}/sbdn-reports/{{{{ ds }}}}.html "
            f"--overlays {OVERLAYS} && sbdn summarize {OUT}"
        ),
    )

    detect >> report
