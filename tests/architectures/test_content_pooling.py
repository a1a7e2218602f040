"""Content pooling: letterbox padding (exact black) is left out of the mean and the max."""

from __future__ import annotations

import numpy as np

from sbdn_pipeline.architectures.content_pooling import ContentPooling


def test_padding_cells_are_left_out_of_mean_and_max():
    images = np.full((1, 8, 8, 3), 50.0, dtype="float32")
    images[:, :4] = 0.0  # top half is letterbox padding
    features = np.zeros((1, 2, 2, 1), dtype="float32")
    features[0, 0, :, 0] = 9.0  # large values on the padding
    features[0, 1, :, 0] = [1.0, 3.0]

    pooled = np.asarray(ContentPooling()([features, images]))

    np.testing.assert_allclose(pooled, [[2.0, 3.0]])  # mean and max of the bottom row only


def test_cells_count_when_more_than_half_is_content():
    images = np.zeros((1, 4, 4, 3), dtype="float32")
    images[:, :, :3] = 10.0  # 3 of the 4 columns are content: cell (0, 1) is half content
    features = np.ones((1, 2, 2, 2), dtype="float32")
    features[0, :, 1] = 5.0  # the half-content cells

    pooled = np.asarray(ContentPooling()([features, images]))

    np.testing.assert_allclose(pooled, [[1.0, 1.0, 1.0, 1.0]])


def test_all_black_input_pools_to_zero():
    pooled = np.asarray(
        ContentPooling()([np.ones((2, 3, 3, 4), "float32"), np.zeros((2, 6, 6, 3), "float32")])
    )
    assert pooled.shape == (2, 8)
    np.testing.assert_allclose(pooled, 0.0)
