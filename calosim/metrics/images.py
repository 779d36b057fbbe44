"""Image-benchmark metrics: Frechet distance and k-NN precision/recall of classifier features.

Features are the penultimate activations of the in-project LeNet classifier
(calosim.metrics.classifier), as the thesis does for MNIST-like data in place of Inception.
The floor is the same numbers for the real test images against the real training images:
what a perfect generator would score with this many samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from calosim.metrics.observables import MetricInputError

if TYPE_CHECKING:
    from calosim.data.images import ImageSplits
    from calosim.metrics.classifier import ClassifierConfig, LeNetClassifier

DEFAULT_NEIGHBOURS = 3  # k of Kynkaanniemi et al. 2019
DEFAULT_FLOOR_SAMPLES = 10_000
_DISTANCE_CHUNK = 512  # rows per block of the pairwise distance matrix
# Relative slack on squared distances for round-off, so a point always lies in its own ball.
_ROUND_OFF = 1e-9


def _check_features(features: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < min_rows:
        raise MetricInputError(f"{name}: expected at least {min_rows} feature rows (N, D), "
                               f"got shape {features.shape}")
    if not np.isfinite(features).all():
        raise MetricInputError(f"{name}: features hold NaN or infinite values")
    return features


def _check_pair(first: np.ndarray, second: np.ndarray, min_rows: int) -> tuple[np.ndarray, ...]:
    first = _check_features(first, "reference", min_rows)
    second = _check_features(second, "candidate", min_rows)
    if first.shape[1] != second.shape[1]:
        raise MetricInputError(f"feature widths differ: {first.shape[1]} and {second.shape[1]}")
    return first, second


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of feature rows."""
    features = _check_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_gaussians(mean_a: np.ndarray, cov_a: np.ndarray,
                               mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between two Gaussians.

    ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2)), where the last trace is
    computed as Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)): that product is symmetric positive
    semi-definite, so its eigenvalues are real and a singular covariance (fewer samples than
    features) needs no regularisation. Eigenvalues below zero from round-off are clipped.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    width = mean_a.shape[0]
    if mean_b.shape != (width,) or cov_a.shape != (width, width) or cov_b.shape != cov_a.shape:
        raise MetricInputError("Gaussians must share one width: means (D,), covariances (D, D)")
    if not all(np.isfinite(array).all() for array in (mean_a, mean_b, cov_a, cov_b)):
        raise MetricInputError("Gaussian parameters hold NaN or infinite values")
    root_a = _psd_sqrt(cov_a)
    product = root_a @ cov_b @ root_a
    cross_values = np.linalg.eigvalsh((product + product.T) / 2)
    scale = max(np.abs(cross_values).max(initial=0.0), np.finfo(np.float64).tiny)
    if cross_values.min(initial=0.0) < -1e-6 * scale:
        raise MetricInputError("covariances are not positive semi-definite")
    trace_cross = np.sqrt(np.clip(cross_values, 0.0, None)).sum()
    distance = float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                     - 2.0 * trace_cross)
    return max(distance, 0.0)


def frechet_distance(reference: np.ndarray, candidate: np.ndarray) -> float:
    """FID-style Frechet distance between Gaussian fits of two sets of feature rows."""
    reference, candidate = _check_pair(reference, candidate, min_rows=2)
    return frechet_distance_gaussians(*gaussian_fit(reference), *gaussian_fit(candidate))


def _squared_distances(rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of ``rows`` to ``others`` (BLAS form, clipped at 0)."""
    squares = (rows ** 2).sum(axis=1)[:, None] + (others ** 2).sum(axis=1)[None, :]
    return np.clip(squares - 2.0 * rows @ others.T, 0.0, None)


def knn_radii(features: np.ndarray, k: int = DEFAULT_NEIGHBOURS) -> np.ndarray:
    """Squared distance of every row to its k-th nearest other row."""
    features = _check_features(features, "features", min_rows=k + 1)
    radii = np.empty(len(features))
    for start in range(0, len(features), _DISTANCE_CHUNK):
        block = _squared_distances(features[start:start + _DISTANCE_CHUNK], features)
        # Index k of the sorted row skips the row's own zero distance.
        radii[start:start + len(block)] = np.partition(block, k, axis=1)[:, k]
    return radii


def manifold_coverage(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``points`` inside at least one ball around a ``manifold`` row
    (squared radii ``radii``)."""
    norms = (manifold ** 2).sum(axis=1)
    inside = 0
    for start in range(0, len(points), _DISTANCE_CHUNK):
        block = points[start:start + _DISTANCE_CHUNK]
        slack = _ROUND_OFF * (norms[None, :] + (block ** 2).sum(axis=1)[:, None])
        inside += int((_squared_distances(block, manifold) <= radii[None, :] + slack)
                      .any(axis=1).sum())
    return inside / len(points)


def precision_recall(reference: np.ndarray, candidate: np.ndarray,
                     k: int = DEFAULT_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall of Kynkaanniemi et al. (2019), k-NN manifolds.

    Each set's manifold is the union of balls around its rows, each ball reaching the
    row's k-th nearest neighbour in the same set. Precision: the fraction of candidate
    rows inside the reference manifold (are samples realistic?); recall: the fraction of
    reference rows inside the candidate manifold (is the data covered?). Both depend on
    the sample sizes: compare sets of equal size.
    """
    if k < 1:
        raise MetricInputError(f"k must be at least 1, got {k}")
    reference, candidate = _check_pair(reference, candidate, min_rows=k + 1)
    precision = manifold_coverage(candidate, reference, knn_radii(reference, k))
    recall = manifold_coverage(reference, candidate, knn_radii(candidate, k))
    return precision, recall


@dataclass(frozen=True)
class ImageScores:
    """FID, precision and recall of a candidate set of images against a reference set."""

    fid: float
    precision: float
    recall: float
    k: int
    n_reference: int
    n_candidate: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_scores(reference: np.ndarray, candidate: np.ndarray,
                   k: int = DEFAULT_NEIGHBOURS) -> ImageScores:
    """FID and precision/recall of two sets of classifier features."""
    precision, recall = precision_recall(reference, candidate, k)
    return ImageScores(frechet_distance(reference, candidate), precision, recall, k,
                       len(reference), len(candidate))


def image_scores(classifier: LeNetClassifier, reference: np.ndarray, candidate: np.ndarray,
                 k: int = DEFAULT_NEIGHBOURS) -> ImageScores:
    """Scores of ``candidate`` images (e.g. a generator's) against ``reference`` images,
    both (N, H, W) or (N, 1, H, W) in [0, 1], through ``classifier``'s features."""
    from calosim.metrics.classifier import extract_features

    return feature_scores(extract_features(classifier, reference, "reference"),
                          extract_features(classifier, candidate, "candidate"), k)


def image_floor(splits: ImageSplits, *, n_samples: int = DEFAULT_FLOOR_SAMPLES, seed: int = 0,
                k: int = DEFAULT_NEIGHBOURS, config: ClassifierConfig | None = None,
                cache_root: str | os.PathLike[str] | None = None,
                announce: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The floor of a benchmark: real test images scored against real training images.

    Both sets are cut to the same size (``n_samples``, or the smaller set), drawn with
    ``seed``. Also reports the classifier's accuracy on the whole test part. The classifier
    is trained on the training part, or read from the cache.
    """
    from calosim.metrics.classifier import classifier_accuracy, load_or_train_classifier

    classifier, path = load_or_train_classifier(splits.train, config=config,
                                                cache_root=cache_root, announce=announce)
    n = min(n_samples, len(splits.train), len(splits.test))
    scores = image_scores(classifier, splits.train.sample(n, seed).images,
                          splits.test.sample(n, seed + 1).images, k)
    return {
        "dataset": splits.name,
        "image_shape": list(splits.train.image_shape),
        "n_train": len(splits.train),
        "n_test": len(splits.test),
        "seed": seed,
        **scores.as_dict(),
        "classifier_accuracy": classifier_accuracy(classifier, splits.test),
        "classifier_file": str(path),
    }
