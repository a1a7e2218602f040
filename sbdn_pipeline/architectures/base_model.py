"""Common base of every sbdn network: a functional Keras model whose config is its arguments."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="sbdn")
class BlurModel(keras.Model):
    """Base class of the sbdn networks (keras-hub "Backbone" style).

    Subclasses build a functional graph in ``__init__`` and pass ``inputs``/``outputs`` to this
    constructor. Their ``get_config`` chains to this one and adds every constructor argument, so
    ``from_config`` simply calls the constructor again: a saved ``.keras`` file holds arguments,
    never layer graphs, and loads with ``safe_mode=True``.

    Class attributes set by subclasses:
        task: "classifier" (output (B, 1) P(blurry)) or "identifier" (output (B, S/k, S/k, 1)).
        default_input_size: side of the square input the network is trained and shipped at.
    """

    task: str = ""
    default_input_size: int = 0

    def get_config(self) -> dict[str, Any]:
        """Return the name and trainable flag; subclasses add their constructor arguments."""
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BlurModel:
        """Rebuild the network from its constructor arguments."""
        return cls(**config)

    @property
    def image_size(self) -> int | None:
        """Side S of the square input, or None when built without a static size."""
        return self.inputs[0].shape[1]

    @property
    def mask_stride(self) -> int:
        """Input pixels per output mask pixel (k); 1 for classifiers."""
        if self.task != "identifier":
            return 1
        input_side = self.inputs[0].shape[1]
        output_side = self.outputs[0].shape[1]
        if input_side is None or output_side is None:
            return int(getattr(self, "output_stride", 1))
        return input_side // output_side
