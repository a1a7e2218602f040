"""Trained weights shipped with sbdn-pipeline (installed as the `sbdn_models` package)."""
