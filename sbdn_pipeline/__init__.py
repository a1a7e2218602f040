"""sbdn-pipeline: find blurry images and where the blur is."""

__version__ = "0.1.0"
