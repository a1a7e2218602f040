"""Packaging for sbdn-pipeline.

The dependency set is pinned to versions measured to work together (see README, "Stack"):
tensorflow-io 0.37.1 is its last release and its ops are ABI-bound to TensorFlow 2.16, which
in turn needs numpy<2; Beam 2.77 needs pyarrow<26.
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "apache-beam[tfrecord]==2.77.0",
    "tensorflow-cpu==2.16.2",
    "tensorflow-io==0.37.1",
    "keras>=3.3,<3.16",
    "numpy==1.26.4",  # TF 2.16 needs numpy<2; keep extras (opencv<4.11) on numpy 1.x too
    "pyarrow>=25,<26",
    "click>=8.1,<9",
    "pillow>=10,<13",
    "scipy>=1.11,<1.14",
    "matplotlib>=3.8,<4",
]

# Google Cloud clients for gs:// and Dataflow. Not Beam's own [gcp] extra: it pulls
# google-cloud-bigtable>=2.44, which needs protobuf>=6.33, while TensorFlow 2.16 needs
# protobuf<5. This subset is what the detect job uses and resolves with TF 2.16.
GCP = [
    "google-cloud-storage>=2.18.2,<4",
    "google-cloud-dataflow-client>=0.13.0,<0.14",
    "google-cloud-resource-manager>=1.12.0,<2",
    "google-cloud-core>=2,<3",
    "google-api-core>=2.11,<3",
    "google-apitools>=0.5.31,<0.5.32",
    "google-auth>=2,<3",
    "google-auth-httplib2>=0.1.0,<0.3.0",
    "cachetools>=3.1.0,<7",
    "grpcio-status<1.63",
    "protobuf>=4.25.8,<5",
]

# Beam's DaskRunner: dask.distributed scheduler and workers (sbdn_pipeline/dask_runner.py).
DASK = ["apache-beam[dask]==2.77.0", "dask>=2024.4.2", "distributed>=2024.4.2"]

EXTRAS_REQUIRE = {
    # psutil/opencv: the benchmarks' smoke tests run in the suite too; pyspark (Java 17+)
    # reads the Parquet tables in a test, next to DuckDB.
    "test": ["pytest>=8", "duckdb>=1.1", "pandas>=2", "scikit-image>=0.22,<0.25",
             "psutil>=5.9", "opencv-python-headless>=4.8,<4.11", "pyspark>=3.5,<3.6",
             *GCP, *DASK],
    # `sbdn demo` derives its corpus from the real photos bundled inside scikit-image.
    "demo": ["scikit-image>=0.22,<0.25", "duckdb>=1.1"],
    "gcp": GCP,
    "aws": ["apache-beam[aws]==2.77.0"],
    "dask": DASK,
    # benchmarks/: process-tree memory and the OpenCV Laplacian speed reference.
    "bench": ["psutil>=5.9", "opencv-python-headless>=4.8,<4.11"],
}

setup(
    name="sbdn-pipeline",
    version="0.1.0",
    description="Find blurry images in large photo collections and say where the blur is.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    # `models/` (the trained weights we ship) is installed as the `sbdn_models` package so
    # that remote Beam workers get the same files as the machine that submits the job.
    packages=find_packages(include=["sbdn_pipeline", "sbdn_pipeline.*", "beam_jobs", "beam_jobs.*"])
    + ["sbdn_models"],
    package_dir={"sbdn_models": "models"},
    package_data={"sbdn_models": ["*.keras", "*.md", "*.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["sbdn=sbdn_pipeline.cli:main"]},
)
