"""The five ZN readout channels and the physics metrics the field reports on them.

Channel convention (default ``parity="odd"``, as in ALICE O2 fast simulation): for an
image indexed [row x, column y], channel 5 (index 4, the common PMT) sums the pixels
with x + y odd (968 fibres); channels 1..4 (indices 0..3, the towers) sum the pixels
with x + y even in the quadrants ch1 x<22, y<22; ch2 x<22, y>=22; ch3 x>=22, y<22;
ch4 x>=22, y>=22 (242 fibres each). ``parity="even"`` gives the common PMT the even
pixels instead (the convention of O2's full-simulation code). The five channels always
sum to the image total.

Metrics (see the facts file of the project):
- per-channel Wasserstein-1 between the channel distributions of two response sets,
  on photon counts, and its mean over the 5 channels (Deja et al. 2020);
- channel MAE between paired responses (same particles, same order);
- pooled log Wasserstein: one W1 over all 5N channel values of the log(1 + x) images
  (the Multiband VAE convention);
- a noise floor: the same metrics between two independent full simulations, against
  which a model's metrics are read as ratios.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from calosim.data.schema import IMAGE_SIZE, N_PIXELS, RESPONSE_SHAPE
from calosim.metrics.observables import (
    MetricInputError,
    ResponseSummary,
    chunk_channels,
    compare_observables,
    is_torch_tensor,
    log1p_counts,
    per_response,
    require_responses,
    summarize_responses,
    wasserstein_1d,
)

if TYPE_CHECKING:
    import torch

PARITIES = ("odd", "even")
N_CHANNELS = 5
CHANNEL_LABELS = ("ch1 tower", "ch2 tower", "ch3 tower", "ch4 tower", "ch5 common")
_HALF = IMAGE_SIZE // 2


def channel_mask(parity: str = "odd") -> np.ndarray:
    """The (1936, 5) 0/1 float64 matrix mapping a flattened image to its 5 channels.

    Read-only (it is cached and shared). Raises MetricInputError for an unknown parity.
    """
    if not isinstance(parity, str) or parity not in PARITIES:
        raise MetricInputError(f"parity must be 'odd' or 'even', got {parity!r}")
    return _build_mask(parity)


@functools.lru_cache(maxsize=len(PARITIES))
def _build_mask(parity: str) -> np.ndarray:
    x, y = np.divmod(np.arange(N_PIXELS), IMAGE_SIZE)
    common = (x + y) % 2 == (1 if parity == "odd" else 0)
    tower = 2 * (x >= _HALF) + (y >= _HALF)
    channel = np.where(common, N_CHANNELS - 1, tower)
    mask = np.zeros((N_PIXELS, N_CHANNELS))
    mask[np.arange(N_PIXELS), channel] = 1.0
    mask.setflags(write=False)
    return mask


def channels(responses: Any, parity: str = "odd") -> Any:
    """Sum responses into the 5 ZN channels: (N, 44, 44) -> (N, 5), (44, 44) -> (5,).

    Numpy input (arrays, memory maps, h5py datasets) gives a float64 numpy array,
    computed chunk by chunk. A torch tensor gives a tensor on the same device, in the
    tensor's floating dtype (integer tensors are summed in float32, exact for counts
    below 2**24) and differentiable. Raises MetricInputError for a bad shape or parity.
    """
    mask = channel_mask(parity)
    if is_torch_tensor(responses):
        return _torch_channels(responses, parity)
    if not hasattr(responses, "shape"):
        responses = np.asarray(responses)
    values = channel_values_of_images(responses, mask)
    return values[0] if tuple(responses.shape) == RESPONSE_SHAPE else values


def channel_values_of_images(
    responses: Any,
    mask: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    name: str = "responses",
) -> np.ndarray:
    """(N, 5) channels of ``transform(image)`` (the identity when None), chunk by chunk."""
    return per_response(responses, lambda chunk: chunk_channels(chunk, mask, transform), name)


def _torch_channels(images: torch.Tensor, parity: str) -> torch.Tensor:
    shape = tuple(images.shape)
    if shape[-2:] != RESPONSE_SHAPE or len(shape) not in (2, 3):
        raise MetricInputError(
            f"responses: expected a tensor of shape (N, 44, 44) or (44, 44), got {shape}"
        )
    if not images.is_floating_point():
        images = images.float()
    flat = images.reshape(*shape[:-2], N_PIXELS)
    return flat @ _torch_mask(parity, images.dtype, images.device)


def with_channel_sums(counts: torch.Tensor, sums: torch.Tensor, parity: str = "odd"
                      ) -> torch.Tensor:
    """(N, 44, 44) counts scaled, channel by channel, so that their 5 channel sums are
    ``sums`` (N, 5); the light keeps its spread within each channel. A channel with no
    light stays dark (there is no spread to scale)."""
    torch = sys.modules["torch"]  # counts is a tensor: torch is loaded
    flat = counts.reshape(-1, N_PIXELS)
    mask = _torch_mask(parity, counts.dtype, counts.device)
    current = flat @ mask
    scale = torch.where(current > 0, sums / current.clamp(min=torch.finfo(counts.dtype).tiny),
                        torch.zeros_like(current))
    return (flat * (scale @ mask.T)).view_as(counts)


@functools.lru_cache(maxsize=16)
def _torch_mask(parity: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    torch = sys.modules["torch"]
    # cached, so never an inference tensor: autograd may use it after generation made it
    with torch.inference_mode(False):
        return torch.from_numpy(channel_mask(parity).copy()).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class ChannelWasserstein:
    """Per-channel Wasserstein-1 distances (photon counts) and their mean."""

    per_channel: np.ndarray
    mean: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: {"per_channel": [5 floats], "mean": float}."""
        return {"per_channel": [float(v) for v in self.per_channel], "mean": float(self.mean)}


def channel_wasserstein(real: Any, generated: Any, parity: str = "odd") -> ChannelWasserstein:
    """W1 between the distributions of each channel of two sets, then the mean of the 5.

    Inputs are responses (N, 44, 44) or precomputed channels (N, 5); the two sets may
    differ in size. Uses scipy.stats.wasserstein_distance on photon counts.
    """
    return wasserstein_of_channels(
        channel_table(real, parity, "real"), channel_table(generated, parity, "generated")
    )


def channel_mae(real: Any, generated: Any, parity: str = "odd") -> float:
    """Mean absolute channel difference of paired responses (same particles, same order).

    Inputs are responses (N, 44, 44) or channels (N, 5) of equal length N; the mean
    runs over the 5 channels and the N pairs.
    """
    return mae_of_channels(
        channel_table(real, parity, "real"), channel_table(generated, parity, "generated")
    )


def pooled_log_wasserstein(real: Any, generated: Any, parity: str = "odd") -> float:
    """One W1 over all 5N channel values of the log(1 + x) images of two response sets.

    The Multiband VAE convention: log1p is applied to every pixel of the photon-count
    image first, the 5 channels are summed from those log pixels, and the 5N values of
    each set are pooled into one sample (channel identity is dropped). Inputs must be
    photon-count responses (N, 44, 44); channel sums of counts cannot be converted.
    """
    mask = channel_mask(parity)
    return pooled_wasserstein(
        _log_channel_table(real, mask, "real"), _log_channel_table(generated, mask, "generated")
    )


def channel_table(data: Any, parity: str, name: str) -> np.ndarray:
    """(N, 5) float64 channels of responses, or precomputed channels checked as given."""
    if is_torch_tensor(data):
        data = data.detach().cpu().numpy()
    if not hasattr(data, "shape"):
        data = np.asarray(data)
    if len(data.shape) == 2 and data.shape[1] == N_CHANNELS:
        values = np.asarray(data, dtype=np.float64)
    else:
        values = channel_values_of_images(data, channel_mask(parity), name=name)
    return require_responses(values, name)


def _log_channel_table(responses: Any, mask: np.ndarray, name: str) -> np.ndarray:
    values = channel_values_of_images(responses, mask, transform=log1p_counts, name=name)
    return require_responses(values, name)


def wasserstein_of_channels(real: np.ndarray, generated: np.ndarray) -> ChannelWasserstein:
    """ChannelWasserstein of two checked (N, 5) channel tables."""
    per_channel = np.array(
        [wasserstein_1d(real[:, c], generated[:, c]) for c in range(N_CHANNELS)]
    )
    return ChannelWasserstein(per_channel=per_channel, mean=float(per_channel.mean()))


def mae_of_channels(real: np.ndarray, generated: np.ndarray) -> float:
    """Channel MAE of two checked, paired (N, 5) channel tables."""
    if len(real) != len(generated):
        raise MetricInputError(
            f"channel MAE needs paired sets of equal length, got {len(real)} real and "
            f"{len(generated)} generated responses"
        )
    return float(np.mean(np.abs(real - generated)))


def pooled_wasserstein(real: np.ndarray, generated: np.ndarray) -> float:
    """W1 between all values of two tables, pooled into one sample each."""
    return wasserstein_1d(real.ravel(), generated.ravel())


def wasserstein_by_energy_bin(
    reference: Any,
    generated: Any,
    energies: Any,
    bins: int | Sequence[float],
    parity: str = "odd",
) -> list[dict[str, Any]]:
    """Per-channel W1 and MAE of paired sets within bins of the particle energy.

    ``reference`` and ``generated``: responses (N, 44, 44) or channels (N, 5) of the
    same N particles in the same order. ``energies``: (N,) energies in GeV, or the
    (N, 9) particle array (its Energy column is used). ``bins``: increasing bin edges,
    or an int for that many equal-population (quantile) bins. Bins are closed on the
    left, the last one also on the right; particles outside the edges are left out.
    Returns one JSON-ready dict per bin: energy_low, energy_high, n, wasserstein_mean,
    wasserstein_per_channel, mae (the last three None for an empty bin).
    """
    ref = channel_table(reference, parity, "reference")
    gen = channel_table(generated, parity, "generated")
    energy = _energy_column(energies)
    if not len(ref) == len(gen) == len(energy):
        raise MetricInputError(
            f"energy bins need paired sets: got {len(ref)} reference, {len(gen)} generated "
            f"responses and {len(energy)} energies"
        )
    edges = _energy_edges(energy, bins)
    n_bins = len(edges) - 1
    index = np.searchsorted(edges, energy, side="right") - 1
    index[energy == edges[-1]] = n_bins - 1
    rows = []
    for b in range(n_bins):
        selected = index == b
        row: dict[str, Any] = {
            "energy_low": float(edges[b]),
            "energy_high": float(edges[b + 1]),
            "n": int(selected.sum()),
            "wasserstein_mean": None,
            "wasserstein_per_channel": None,
            "mae": None,
        }
        if row["n"]:
            distance = wasserstein_of_channels(ref[selected], gen[selected])
            row["wasserstein_mean"] = distance.mean
            row["wasserstein_per_channel"] = distance.to_dict()["per_channel"]
            row["mae"] = mae_of_channels(ref[selected], gen[selected])
        rows.append(row)
    return rows


def _energy_column(energies: Any) -> np.ndarray:
    energy = np.asarray(energies, dtype=np.float64)
    if energy.ndim == 2 and energy.shape[1] in (9, 10):
        energy = energy[:, 0]
    if energy.ndim != 1:
        raise MetricInputError(
            f"energies: expected shape (N,) or an (N, 9) particle array, got {energy.shape}"
        )
    if not np.isfinite(energy).all():
        raise MetricInputError("energies: hold NaN or infinite values")
    return energy


def _energy_edges(energy: np.ndarray, bins: int | Sequence[float]) -> np.ndarray:
    if isinstance(bins, (int, np.integer)):
        if bins < 1 or len(energy) == 0:
            raise MetricInputError(
                f"energy bins: need at least 1 bin and 1 particle, got {bins} and {len(energy)}"
            )
        return np.quantile(energy, np.linspace(0.0, 1.0, int(bins) + 1))
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise MetricInputError(f"energy bins: expected increasing bin edges, got {bins!r}")
    return edges


def zdc_metrics(
    reference: Any,
    generated: Any,
    floor: Mapping[str, Any] | None = None,
    parity: str = "odd",
) -> dict[str, Any]:
    """All ZN metrics of ``generated`` against ``reference`` responses, JSON-ready.

    Keys: "wasserstein" {"per_channel", "mean"}; "mae" (only when both sets have the
    same length, i.e. are paired); "pooled_log_wasserstein"; "n_reference";
    "n_generated"; "observables" (photon sums, empty and zero-pixel fractions,
    centroids, occupancy of each set, and distances between them); and, when ``floor``
    (this same dict computed between two independent full simulations) is given,
    "ratio_to_floor" (see ratio_to_floor).
    """
    mask = channel_mask(parity)
    ref = summarize_responses(reference, mask, "reference")
    gen = summarize_responses(generated, mask, "generated")
    return metrics_from_summaries(ref, gen, floor, paired=len(ref.channels) == len(gen.channels))


def metrics_from_summaries(
    reference: ResponseSummary,
    generated: ResponseSummary,
    floor: Mapping[str, Any] | None = None,
    *,
    paired: bool,
) -> dict[str, Any]:
    """`zdc_metrics` from response sets already summarised (each read once, reusable).

    ``paired``: the two sets hold the same particles in the same order, so the channel
    MAE (response i against response i) is meaningful and included.
    """
    ref, gen = reference, generated
    metrics: dict[str, Any] = {
        "wasserstein": wasserstein_of_channels(ref.channels, gen.channels).to_dict()
    }
    if paired:
        metrics["mae"] = mae_of_channels(ref.channels, gen.channels)
    metrics["pooled_log_wasserstein"] = pooled_wasserstein(ref.log_channels, gen.log_channels)
    metrics["n_reference"] = len(ref.channels)
    metrics["n_generated"] = len(gen.channels)
    metrics["observables"] = compare_observables(ref, gen)
    if floor is not None:
        metrics["ratio_to_floor"] = ratio_to_floor(metrics, floor)
    return metrics


def ratio_to_floor(metrics: Mapping[str, Any], floor: Mapping[str, Any]) -> dict[str, Any]:
    """Ratios of ``metrics`` to a noise ``floor`` (both dicts in the zdc_metrics layout).

    Keys: wasserstein_mean, pooled_log_wasserstein, wasserstein_per_channel (5) and,
    when both dicts hold it, mae. A ratio to a zero floor is undefined and given as None.
    """
    try:
        floor_w = floor["wasserstein"]
        floor_mean = float(floor_w["mean"])
        floor_channels = [float(v) for v in floor_w["per_channel"]]
        floor_log = float(floor["pooled_log_wasserstein"])
    except (KeyError, TypeError, ValueError) as error:
        raise MetricInputError(
            f"floor: not a zdc_metrics result (missing or bad {error})"
        ) from None
    if len(floor_channels) != N_CHANNELS:
        raise MetricInputError(
            f"floor: expected {N_CHANNELS} per-channel Wasserstein values, "
            f"got {len(floor_channels)}"
        )
    ratios: dict[str, Any] = {
        "wasserstein_mean": _ratio(metrics["wasserstein"]["mean"], floor_mean),
        "pooled_log_wasserstein": _ratio(metrics["pooled_log_wasserstein"], floor_log),
        "wasserstein_per_channel": [
            _ratio(value, base)
            for value, base in zip(
                metrics["wasserstein"]["per_channel"], floor_channels, strict=True
            )
        ],
    }
    if "mae" in metrics and floor.get("mae") is not None:
        ratios["mae"] = _ratio(metrics["mae"], float(floor["mae"]))
    return ratios


def _ratio(value: float, base: float) -> float | None:
    return float(value) / base if base > 0 else None
