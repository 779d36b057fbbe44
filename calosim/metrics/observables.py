"""Image-level observables of ZN responses, and the chunked reading every metric shares.

Responses are (N, 44, 44) photon-count images indexed [row x, column y] (see
calosim.data.schema). Sets of 100k-1M responses do not fit comfortably in memory as
float64, so every function here reads its input in chunks of CHUNK_SIZE images, converts
only that chunk to float64 and keeps per-response results (a few numbers each). Inputs
may be numpy arrays, memory maps, h5py datasets or torch tensors: anything with a
``shape`` that slices along its first axis. A single (44, 44) image counts as a batch
of one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from calosim.data.schema import IMAGE_SIZE, N_PIXELS, RESPONSE_SHAPE
from calosim.errors import CalosimError

# A float64 chunk of 8192 images is about 127 MB: large enough for fast matmuls, small
# enough to run beside other jobs on a laptop.
CHUNK_SIZE = 8192
FIBRE_PITCH_CM = 0.16
# Pixel [x, y] has its centre at ((x - 21.5) * pitch, (y - 21.5) * pitch) cm: the image
# centre, between the four middle fibres, is the calorimeter axis.
PIXEL_CENTRES_CM = (np.arange(IMAGE_SIZE) - (IMAGE_SIZE - 1) / 2) * FIBRE_PITCH_CM


class MetricInputError(CalosimError, ValueError):
    """Arrays given to a metric or plot have the wrong shape, size or values."""


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between two 1-D samples (scipy.stats.wasserstein_distance)."""
    # Imported here: scipy.stats takes half a second to load and `calosim.channels` alone
    # should not pay for it.
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a, b))


def is_torch_tensor(value: Any) -> bool:
    """True for a torch.Tensor, without importing torch when the caller never did."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def response_batch(responses: Any, name: str = "responses") -> Any:
    """Return ``responses`` as an (N, 44, 44) sliceable array without copying it.

    Torch tensors become numpy arrays (detached, on the CPU); lists become arrays;
    numpy arrays, memory maps and h5py datasets pass through unread. A (44, 44) image
    becomes a batch of one. Raises MetricInputError naming ``name`` on any other shape.
    """
    if is_torch_tensor(responses):
        responses = responses.detach().cpu().numpy()
    elif not (hasattr(responses, "shape") and hasattr(responses, "__getitem__")):
        responses = np.asarray(responses)
    shape = tuple(responses.shape)
    if shape == RESPONSE_SHAPE:
        return np.asarray(responses)[None]
    if len(shape) != 3 or shape[1:] != RESPONSE_SHAPE:
        raise MetricInputError(f"{name}: expected responses of shape (N, 44, 44), got {shape}")
    return responses


def iter_chunks(batch: Any, chunk_size: int | None = None) -> Iterator[np.ndarray]:
    """Yield consecutive float64 (n, 44, 44) chunks (CHUNK_SIZE images unless given)."""
    size = chunk_size or CHUNK_SIZE
    for start in range(0, len(batch), size):
        yield np.asarray(batch[start : start + size], dtype=np.float64)


def per_response(
    responses: Any, kernel: Callable[[np.ndarray], np.ndarray], name: str
) -> np.ndarray:
    """Concatenate ``kernel(chunk)`` over all chunks: one result row per response."""
    batch = response_batch(responses, name)
    parts = [kernel(chunk) for chunk in iter_chunks(batch)]
    if not parts:
        empty_shape = kernel(np.zeros((0, *RESPONSE_SHAPE))).shape
        return np.zeros(empty_shape)
    return np.concatenate(parts)


def chunk_channels(
    chunk: np.ndarray,
    mask: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """(n, k) sums of ``transform(pixel)`` (identity when None) through a (1936, k) mask."""
    flat = chunk.reshape(len(chunk), N_PIXELS)
    return (flat if transform is None else transform(flat)) @ mask


def chunk_lit_pixels(chunk: np.ndarray) -> np.ndarray:
    """(n,) number of non-zero pixels of each image."""
    return np.count_nonzero(chunk.reshape(len(chunk), N_PIXELS), axis=1)


def chunk_centroids(chunk: np.ndarray) -> np.ndarray:
    """Intensity-weighted (x, y) centre in cm of each image; NaN where the sum is not > 0."""
    totals = chunk.sum(axis=(1, 2))
    weighted = np.stack(
        [chunk.sum(axis=2) @ PIXEL_CENTRES_CM, chunk.sum(axis=1) @ PIXEL_CENTRES_CM], axis=1
    )
    valid = np.broadcast_to((totals > 0)[:, None], weighted.shape)
    return np.divide(
        weighted, totals[:, None], out=np.full_like(weighted, np.nan), where=valid
    )


def chunk_lit_map(chunk: np.ndarray) -> np.ndarray:
    """(44, 44) number of images of the chunk in which each pixel is non-zero."""
    return np.count_nonzero(chunk, axis=0)


def chunk_image_sum(chunk: np.ndarray) -> np.ndarray:
    """(44, 44) pixel-wise sum of the images of the chunk."""
    return chunk.sum(axis=0)


def log1p_counts(images: np.ndarray) -> np.ndarray:
    """log(1 + x) of photon counts; negative values (a model's rounding) count as zero."""
    return np.log1p(np.maximum(images, 0.0))


def photon_sums(responses: Any, name: str = "responses") -> np.ndarray:
    """Total photon count of each response (the sum of its 1936 pixels), shape (N,)."""
    return per_response(responses, lambda chunk: chunk.sum(axis=(1, 2)), name)


def lit_pixel_counts(responses: Any, name: str = "responses") -> np.ndarray:
    """Number of non-zero pixels of each response, shape (N,)."""
    return per_response(responses, chunk_lit_pixels, name)


def empty_fraction(responses: Any, name: str = "responses") -> float:
    """Fraction of responses without any non-zero pixel (22 % of the raw ZN set)."""
    return _empty_fraction(require_responses(lit_pixel_counts(responses, name), name))


def zero_pixel_fraction(responses: Any, name: str = "responses") -> float:
    """Fraction of all pixels of all responses that are zero (96 % in the real ZN set)."""
    return _zero_pixel_fraction(require_responses(lit_pixel_counts(responses, name), name))


def centroids(responses: Any, name: str = "responses") -> np.ndarray:
    """Intensity-weighted mean of the pixel centres, in cm, shape (N, 2) as (x, y).

    Pixel [x, y] has its centre at ((x - 21.5) * 0.16, (y - 21.5) * 0.16) cm. Empty
    responses (and ones whose pixels do not sum to a positive value) give NaN.
    """
    return per_response(responses, chunk_centroids, name)


def occupancy(responses: Any, name: str = "responses") -> np.ndarray:
    """Fraction of responses in which each pixel is non-zero, shape (44, 44)."""
    return mean_over_responses(responses, chunk_lit_map, name)


def mean_response(responses: Any, name: str = "responses") -> np.ndarray:
    """Mean photon count of each pixel over all responses, shape (44, 44)."""
    return mean_over_responses(responses, chunk_image_sum, name)


def mean_over_responses(
    responses: Any, chunk_total: Callable[[np.ndarray], np.ndarray], name: str
) -> np.ndarray:
    """Sum ``chunk_total(chunk)`` over all chunks and divide by the number of responses."""
    batch = response_batch(responses, name)
    if len(batch) == 0:
        raise MetricInputError(f"{name}: holds no responses")
    total = sum(chunk_total(chunk) for chunk in iter_chunks(batch))
    return np.asarray(total, dtype=np.float64) / len(batch)


def require_responses(values: np.ndarray, name: str) -> np.ndarray:
    """Return per-response ``values`` unchanged after checking them.

    Raises MetricInputError naming ``name`` when there are no rows or a row holds NaN
    or infinite values.
    """
    if len(values) == 0:
        raise MetricInputError(f"{name}: holds no responses")
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not finite.all():
        raise MetricInputError(
            f"{name}: {int((~finite).sum())} response(s) hold NaN or infinite values"
        )
    return values


@dataclass(frozen=True)
class ResponseSummary:
    """Everything the metrics and plots need from one response set, read in one pass."""

    channels: np.ndarray  # (N, 5) photon counts
    log_channels: np.ndarray  # (N, 5) channels of the log(1 + x) image
    lit_pixels: np.ndarray  # (N,) non-zero pixels per response
    centroids: np.ndarray  # (N, 2) cm, NaN for empty responses
    occupancy: np.ndarray  # (44, 44) fraction of responses with the pixel non-zero
    mean_image: np.ndarray  # (44, 44) mean photon count per pixel

    @property
    def photon_sums(self) -> np.ndarray:
        """(N,) total photon count of each response."""
        return self.channels.sum(axis=1)


def summarize_responses(
    responses: Any, channel_mask: np.ndarray, name: str = "responses"
) -> ResponseSummary:
    """Read a response set once, chunk by chunk, and keep what metrics and plots need.

    ``channel_mask``: the (1936, 5) matrix of calosim.metrics.zdc.channel_mask.
    Raises MetricInputError for an empty set or non-finite pixels.
    """
    batch = response_batch(responses, name)
    counts, logs, lit, centres = [], [], [], []
    lit_map = np.zeros(RESPONSE_SHAPE)
    image_sum = np.zeros(RESPONSE_SHAPE)
    for chunk in iter_chunks(batch):
        counts.append(chunk_channels(chunk, channel_mask))
        logs.append(chunk_channels(chunk, channel_mask, log1p_counts))
        lit.append(chunk_lit_pixels(chunk))
        centres.append(chunk_centroids(chunk))
        lit_map += chunk_lit_map(chunk)
        image_sum += chunk_image_sum(chunk)
    if len(batch) == 0:
        raise MetricInputError(f"{name}: holds no responses")
    return ResponseSummary(
        channels=require_responses(np.concatenate(counts), name),
        log_channels=np.concatenate(logs),
        lit_pixels=np.concatenate(lit),
        centroids=np.concatenate(centres),
        occupancy=lit_map / len(batch),
        mean_image=image_sum / len(batch),
    )


def describe_observables(summary: ResponseSummary) -> dict[str, Any]:
    """JSON-ready observables of one response set (undefined values are None)."""
    sums = summary.photon_sums
    lit = summary.lit_pixels
    centres = _finite_rows(summary.centroids)
    has_centres = len(centres) > 0
    return {
        "empty_fraction": _empty_fraction(lit),
        "zero_pixel_fraction": _zero_pixel_fraction(lit),
        "photon_sum": {
            "mean": float(sums.mean()),
            "std": float(sums.std()),
            "median": float(np.median(sums)),
            "max": float(sums.max()),
        },
        "centroid_mean_cm": [float(v) for v in centres.mean(axis=0)] if has_centres else None,
        "centroid_std_cm": [float(v) for v in centres.std(axis=0)] if has_centres else None,
    }


def compare_observables(reference: ResponseSummary, generated: ResponseSummary) -> dict[str, Any]:
    """Observables of both sets and W1 / largest differences between them, JSON-ready."""
    ref_centres = _finite_rows(reference.centroids)
    gen_centres = _finite_rows(generated.centroids)
    centroid_w1 = None
    if len(ref_centres) and len(gen_centres):
        centroid_w1 = [
            wasserstein_1d(ref_centres[:, axis], gen_centres[:, axis])
            for axis in range(2)
        ]
    return {
        "reference": describe_observables(reference),
        "generated": describe_observables(generated),
        "photon_sum_wasserstein": wasserstein_1d(reference.photon_sums, generated.photon_sums),
        "centroid_wasserstein_cm": centroid_w1,
        "occupancy_max_abs_difference": float(
            np.abs(reference.occupancy - generated.occupancy).max()
        ),
    }


def _finite_rows(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values).all(axis=1)]


def _empty_fraction(lit_pixels: np.ndarray) -> float:
    return float(np.mean(lit_pixels == 0))


def _zero_pixel_fraction(lit_pixels: np.ndarray) -> float:
    return float(1.0 - lit_pixels.sum() / (len(lit_pixels) * N_PIXELS))
