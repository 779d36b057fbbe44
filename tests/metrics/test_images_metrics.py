from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm

from calosim.metrics.images import (
    feature_scores,
    frechet_distance,
    frechet_distance_gaussians,
    precision_recall,
)
from calosim.metrics.observables import MetricInputError


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    """800 correlated 16-D feature rows."""
    rng = np.random.default_rng(11)
    mixing = rng.normal(size=(16, 16))
    return rng.normal(size=(800, 16)) @ mixing + 3.0


def _random_covariance(rng: np.random.Generator, width: int) -> np.ndarray:
    factor = rng.normal(size=(width, width))
    return factor @ factor.T / width + 0.1 * np.eye(width)


def test_frechet_distance_of_a_set_with_itself_is_zero(features):
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_grows_with_added_noise(features):
    rng = np.random.default_rng(2)
    noise = rng.normal(size=features.shape)
    distances = [frechet_distance(features, features + level * noise)
                 for level in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert distances[0] < 1e-8
    assert np.all(np.diff(distances) > 0)
    # Noise of variance s^2 turns each covariance eigenvalue l into l + s^2, adding
    # (sqrt(l + s^2) - sqrt(l))^2 per direction (up to sampling of the cross terms).
    eigenvalues = np.linalg.eigvalsh(np.cov(features, rowvar=False))
    expected = np.sum((np.sqrt(eigenvalues + 4.0 ** 2) - np.sqrt(eigenvalues)) ** 2)
    assert distances[-1] == pytest.approx(expected, rel=0.1)


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    result = frechet_distance_gaussians(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert result == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_agrees_with_scipy_sqrtm_on_full_covariances():
    rng = np.random.default_rng(7)
    for width in (2, 8, 32):
        cov_a, cov_b = _random_covariance(rng, width), _random_covariance(rng, width)
        mean_a, mean_b = rng.normal(size=width), rng.normal(size=width)
        cross = np.real(sqrtm(cov_a @ cov_b))
        expected = (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                    - 2 * np.trace(cross))
        result = frechet_distance_gaussians(mean_a, cov_a, mean_b, cov_b)
        assert result == pytest.approx(expected, rel=1e-8)
        assert frechet_distance_gaussians(mean_b, cov_b, mean_a, cov_a) == pytest.approx(
            result, rel=1e-8)


def test_frechet_distance_with_singular_covariances_is_finite():
    rng = np.random.default_rng(3)
    few = rng.normal(size=(10, 64))  # 10 rows in 64 dimensions: rank 9 covariances
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-8)
    shifted = frechet_distance(few, few + 1.0)
    # Square roots of round-off-sized eigenvalues limit the precision to about 1e-7.
    assert shifted == pytest.approx(64.0, rel=1e-6)


def test_frechet_distance_checks_its_inputs(features):
    with pytest.raises(MetricInputError, match="widths differ"):
        frechet_distance(features, features[:, :8])
    broken = features.copy()
    broken[3, 2] = np.nan
    with pytest.raises(MetricInputError, match="NaN"):
        frechet_distance(features, broken)
    with pytest.raises(MetricInputError, match="at least 2"):
        frechet_distance(features[:1], features)
    with pytest.raises(MetricInputError, match="positive semi-definite"):
        frechet_distance_gaussians(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))


def test_precision_recall_of_identical_sets_is_one(features):
    assert precision_recall(features, features) == (1.0, 1.0)


def test_precision_recall_of_a_far_disjoint_set_is_zero(features):
    assert precision_recall(features, features + 1000.0) == (0.0, 0.0)


def test_precision_recall_separate_quality_from_coverage():
    rng = np.random.default_rng(4)
    centres = np.zeros((2, 8))
    centres[1, 0] = 50.0

    def two_modes(n: int) -> np.ndarray:
        return rng.normal(size=(n, 8)) + centres[np.arange(n) % 2]

    reference = two_modes(600)
    # Finite samples of the same distribution miss a few tail points: the baseline.
    base_precision, base_recall = precision_recall(reference, two_modes(600))
    assert min(base_precision, base_recall) > 0.8
    # Samples of one mode only: as realistic, but half the data uncovered.
    precision, recall = precision_recall(reference, rng.normal(size=(600, 8)))
    assert precision == pytest.approx(base_precision, abs=0.05)
    assert recall == pytest.approx(base_recall / 2, abs=0.05)
    # Half the samples far off: half the precision, the data still covered.
    mixed = np.vstack([two_modes(300), rng.normal(size=(300, 8)) + 1000.0])
    precision, recall = precision_recall(reference, mixed)
    assert precision == pytest.approx(base_precision / 2, abs=0.05)
    assert recall > 0.8


def test_precision_recall_checks_k(features):
    with pytest.raises(MetricInputError, match="k must be"):
        precision_recall(features, features, k=0)
    with pytest.raises(MetricInputError, match="at least 4"):
        precision_recall(features[:3], features)


def test_feature_scores_bundle_the_numbers(features):
    scores = feature_scores(features, features + 0.5)
    assert scores.fid == pytest.approx(frechet_distance(features, features + 0.5))
    assert (scores.precision, scores.recall) == precision_recall(features, features + 0.5)
    assert scores.as_dict()["n_candidate"] == len(features) and scores.k == 3
