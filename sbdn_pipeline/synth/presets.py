"""Names of the synthesis presets and defaults of `sbdn make-dataset` (no heavy imports: the
CLI's --help reads them; beam_jobs.make_dataset.MakeDatasetOptions uses the same values)."""

PRESETS = ("photographic", "cross-recipe", "realistic", "original")
DEFAULT_PRESET = "photographic"
# Mirrors sbdn_pipeline.features.SPLITS, which imports TensorFlow.
SPLIT_NAMES = ("train", "val", "test")

DEFAULT_VARIANTS_PER_IMAGE = 8
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1
DEFAULT_EXAMPLES_PER_SHARD = 128
