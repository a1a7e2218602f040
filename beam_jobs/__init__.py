"""Beam pipelines of sbdn-pipeline (shipped in the same distribution as the library)."""
