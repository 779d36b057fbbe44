"""Image observables on hand-made responses, and the inputs they accept."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from calosim.errors import CalosimError
from calosim.metrics import (
    centroids,
    channel_mask,
    empty_fraction,
    lit_pixel_counts,
    mean_response,
    occupancy,
    photon_sums,
    summarize_responses,
    zero_pixel_fraction,
)
from calosim.metrics.observables import describe_observables


def hand_made_set() -> np.ndarray:
    """Three responses: one lit pixel, two symmetric pixels, and an empty one."""
    images = np.zeros((3, 44, 44))
    images[0, 3, 40] = 4.0
    images[1, 10, 20] = images[1, 12, 24] = 2.0
    return images


def test_centroid_of_single_pixel_and_pair_and_empty_response():
    result = centroids(hand_made_set())
    np.testing.assert_allclose(result[0], [(3 - 21.5) * 0.16, (40 - 21.5) * 0.16])
    np.testing.assert_allclose(result[1], [(11 - 21.5) * 0.16, (22 - 21.5) * 0.16])
    assert np.isnan(result[2]).all()


def test_weighted_centroid_and_uniform_image_sits_at_the_centre():
    image = np.zeros((44, 44))
    image[0, 0], image[0, 43] = 1.0, 3.0  # weights 1:3 along y
    x, y = centroids(image)[0]
    assert x == pytest.approx(-21.5 * 0.16)
    assert y == pytest.approx((0.25 * 0 + 0.75 * 43 - 21.5) * 0.16)
    np.testing.assert_allclose(centroids(np.ones((44, 44))), [[0.0, 0.0]], atol=1e-12)


def test_sums_empty_and_zero_pixel_fractions():
    images = hand_made_set()
    np.testing.assert_array_equal(photon_sums(images), [4.0, 4.0, 0.0])
    np.testing.assert_array_equal(lit_pixel_counts(images), [1, 2, 0])
    assert empty_fraction(images) == pytest.approx(1 / 3)
    assert zero_pixel_fraction(images) == pytest.approx(1 - 3 / (3 * 1936))


def test_occupancy_and_mean_response():
    images = hand_made_set()
    expected_occupancy = np.zeros((44, 44))
    expected_occupancy[3, 40] = expected_occupancy[10, 20] = expected_occupancy[12, 24] = 1 / 3
    np.testing.assert_allclose(occupancy(images), expected_occupancy)
    np.testing.assert_allclose(mean_response(images), images.sum(axis=0) / 3)


def test_summary_reads_everything_the_single_functions_compute():
    images = np.random.default_rng(0).poisson(0.05, size=(50, 44, 44))
    images[:7] = 0
    summary = summarize_responses(images, channel_mask("odd"))
    np.testing.assert_allclose(summary.photon_sums, photon_sums(images))
    np.testing.assert_array_equal(summary.lit_pixels, lit_pixel_counts(images))
    np.testing.assert_allclose(summary.centroids, centroids(images))
    np.testing.assert_allclose(summary.occupancy, occupancy(images))
    np.testing.assert_allclose(summary.mean_image, mean_response(images))
    described = describe_observables(summary)
    assert described["empty_fraction"] == pytest.approx(empty_fraction(images))
    assert described["zero_pixel_fraction"] == pytest.approx(zero_pixel_fraction(images))
    assert described["centroid_mean_cm"] == pytest.approx(
        list(np.nanmean(centroids(images), axis=0))
    )


def test_torch_and_h5py_inputs_give_the_numpy_result(tmp_path):
    images = hand_made_set().astype(np.float32)
    path = tmp_path / "responses.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("responses", data=images)
    with h5py.File(path, "r") as handle:
        np.testing.assert_allclose(centroids(handle["responses"]), centroids(images))
    np.testing.assert_allclose(photon_sums(torch.from_numpy(images)), photon_sums(images))


def test_bad_input_is_named_in_one_line():
    with pytest.raises(CalosimError, match=r"generated: expected responses of shape"):
        photon_sums(np.zeros((2, 40, 40)), name="generated")
    with pytest.raises(CalosimError, match="reference: holds no responses"):
        empty_fraction(np.zeros((0, 44, 44)), name="reference")
    with pytest.raises(CalosimError, match="holds no responses"):
        occupancy(np.zeros((0, 44, 44)))
