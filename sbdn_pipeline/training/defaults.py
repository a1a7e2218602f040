"""Defaults of `sbdn train` and `sbdn evaluate` (no heavy imports: the CLI's --help reads them).

``training.train`` and ``training.evaluate`` import TensorFlow; their defaults live here so that
the command-line options and the functions share one value.
"""

CLASSIFIER = "classifier"
IDENTIFIER = "identifier"
TASKS = (CLASSIFIER, IDENTIFIER)
LOSSES = ("bce", "bce_dice", "mse")

DEFAULT_PATIENCE = 8
DEFAULT_BLUR_MAP_WEIGHT = 1.0
# Share of training examples shown whole and letterboxed (as evaluation and the detect job
# see them) instead of as random crops: the crops never contain letterbox padding and are
# never shrunk as much as a whole photo is, so without these the nets would meet both only
# at inference time.
DEFAULT_LETTERBOX_FRACTION = 0.25
# Strength of random exposure / white-balance / saturation / gamma changes of training images
# (reader.jitter_colours); 0 = off, as the shipped models were trained.
DEFAULT_COLOUR_JITTER = 0.0
# Random quarter turns and vertical flips of training views (left-right flips are always on).
DEFAULT_TURN_AND_FLIP = False

# sbdn evaluate: the split evaluated and the images per model call.
DEFAULT_EVAL_SPLIT = "test"
DEFAULT_EVAL_BATCH_SIZE = 16
