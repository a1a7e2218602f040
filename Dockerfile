# Worker image for running `sbdn detect` on Dataflow (--sdk_container_image) or on Flink and
# other portable runners (--environment_type DOCKER --environment_config IMAGE).
#
# It starts FROM the official Apache Beam Python 3.11 SDK image of the exact Beam version
# setup.py pins, so the SDK harness in the workers is the SDK that built the job, and adds
# this package (sbdn_pipeline, beam_jobs) with its pinned stack and the models in models/.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/sbdn:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/sbdn:0.1.0
#
# Build args: BEAM_VERSION must equal the apache-beam pin in setup.py; SBDN_EXTRAS picks the
# cloud client libraries (gcp for Dataflow and gs://, aws for s3://, "gcp,aws" for both).
# See docs/cluster.md.
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

ARG SBDN_EXTRAS=gcp

# The SDK image preinstalls Beam's full [gcp] extra, whose newest Google Cloud clients need
# protobuf >= 6, while TensorFlow 2.16 (pinned so tensorflow-io's WebP/TIFF decoders work)
# needs protobuf < 5. The job uses none of these clients, so remove them before installing
# our pins; `pip check` below fails the build if anything left is inconsistent.
RUN pip uninstall -y --no-cache-dir \
        google-cloud-aiplatform google-cloud-bigquery google-cloud-bigquery-storage \
        google-cloud-bigtable google-cloud-build google-cloud-datastore google-cloud-dlp \
        google-cloud-kms google-cloud-language google-cloud-monitoring google-cloud-profiler \
        google-cloud-pubsub google-cloud-pubsublite google-cloud-recommendations-ai \
        google-cloud-secret-manager google-cloud-spanner google-cloud-videointelligence \
        google-cloud-vision google-cloud-sql google-genai cloud-sql-python-connector \
        keyrings.google-artifactregistry-auth grpc-interceptor \
    || true

WORKDIR /opt/sbdn
# Only what the package needs (see .dockerignore): changing tests or docs does not rebuild.
COPY setup.py README.md ./
COPY sbdn_pipeline ./sbdn_pipeline
COPY beam_jobs ./beam_jobs
COPY models ./models

# A regular (non-editable) install: workers import sbdn_pipeline, beam_jobs and sbdn_models
# (the shipped models) from site-packages, wherever the job was submitted from.
RUN pip install --no-cache-dir ".[${SBDN_EXTRAS}]" \
    && pip check \
    && python -c "import apache_beam, tensorflow, sbdn_pipeline, beam_jobs.detect, sbdn_models; \
assert apache_beam.__version__ == '${BEAM_VERSION}', apache_beam.__version__; \
print('sbdn worker image: beam', apache_beam.__version__, 'tensorflow', tensorflow.__version__)" \
    && rm -rf /opt/sbdn/build

# The Beam SDK harness boot program of the base image starts the worker.
ENTRYPOINT ["/opt/apache/beam/boot"]
