"""Names of the synthesis presets (no heavy imports: the CLI's --help reads them)."""

PRESETS = ("photographic", "cross-recipe", "realistic", "original")
DEFAULT_PRESET = "photographic"
# Mirrors sbdn_pipeline.features.SPLITS, which imports TensorFlow.
SPLIT_NAMES = ("train", "val", "test")
