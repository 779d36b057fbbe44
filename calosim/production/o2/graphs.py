"""The two graphs O2 runs per particle, as torch modules: the generator and the classifier.

Each comes as a core that takes its randomness as inputs, exported only to check every
operation against torch, and as the O2 form, which draws that randomness inside the
graph (ONNX RandomNormalLike / RandomUniformLike) and takes O2's inputs alone.

The generator's output 0 is what O2's hit path needs: for integer photons k (the model's
counts rounded as the model rounds them), log(1 + k + 1/2) where k > 0 and 0 elsewhere.
O2 records (int) expm1(value) photons per fibre: the half photon keeps float32 round-off
from truncating k to k - 1, so the hits are exactly the k photons. Output 1 is the
model's unrounded log(1 + counts), which O2 does not read.
"""

from __future__ import annotations

import torch
from torch import nn

from calosim.data.schema import N_ATTRIBUTES, N_PIXELS
from calosim.models.base import GenerativeModel

O2_NOISE_DIM = 10
# Added to integer photons before log1p, so that O2's truncation of expm1 gives them back.
PHOTON_OFFSET = 0.5
# How the classifier turns P(kept) into O2's decision (std::round of output 0 != 0):
# "sample" outputs a Bernoulli draw, 1 or 0, as calosim's own gate does; "threshold"
# outputs P(kept) itself, so O2 simulates exactly the particles with P(kept) >= 1/2.
DECISIONS = ("sample", "threshold")


def extra_noise_dim(model: GenerativeModel) -> int:
    """How many of the response's noise numbers O2 does not feed (drawn in the graph)."""
    return max(model.response_noise_shape[0] - O2_NOISE_DIM, 0)


def has_gate(model: GenerativeModel) -> bool:
    """Whether the model's own gate decides which responses are empty."""
    with torch.no_grad():
        probe = torch.zeros(1, N_ATTRIBUTES, device=next(model.parameters()).device)
        return model.empty_probability(probe) is not None


class GeneratorCore(nn.Module):
    """(noise (B, 10), conditions (B, 9), extra noise (B, E), jitter (B, 1936)) ->
    (hit-path output (B, 1936), log(1 + counts) (B, 1936)); E = ``extra_noise_dim``.

    ``rounding`` "stochastic" gives floor(counts + jitter), "nearest" round(counts)."""

    def __init__(self, model: GenerativeModel, rounding: str) -> None:
        super().__init__()
        self.model = model
        self.rounding = rounding
        self.response_dim = model.response_noise_shape[0]

    def forward(self, noise: torch.Tensor, conditions: torch.Tensor,
                extra_noise: torch.Tensor | None, jitter: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        response_noise = (noise[:, : self.response_dim] if extra_noise is None
                          else torch.cat([noise, extra_noise], dim=1))
        counts = self.model.kept_counts(response_noise, conditions).flatten(1).clamp(min=0)
        photons = torch.floor(counts + jitter) if jitter is not None else torch.round(counts)
        hits = torch.where(photons > 0, torch.log1p(photons + PHOTON_OFFSET),
                           torch.zeros_like(photons))
        return hits, torch.log1p(counts)


class ClassifierCore(nn.Module):
    """(conditions (B, 9), uniform (B, 1)) -> (decision (B, 1), P(kept) (B, 1)).

    A response is empty when uniform < P(empty), as calosim's gate draws it; a model
    without a gate keeps every particle."""

    def __init__(self, model: GenerativeModel, decision: str) -> None:
        super().__init__()
        self.model = model
        self.decision = decision

    def forward(self, conditions: torch.Tensor, uniform: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        empty = self.model.empty_probability(conditions)
        if empty is None:
            kept = torch.ones_like(conditions[:, :1])
            return kept, kept
        kept = (1.0 - empty).unsqueeze(1)
        if uniform is None:
            return kept, kept
        return (uniform >= empty.unsqueeze(1)).to(kept.dtype), kept


class O2Generator(nn.Module):
    """What O2 runs: (noise (B, 10), conditions (B, 9)) -> the core's two outputs."""

    def __init__(self, core: GeneratorCore) -> None:
        super().__init__()
        self.core = core
        self.extra_dim = extra_noise_dim(core.model)

    def forward(self, noise: torch.Tensor, conditions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        column = noise[:, :1]
        extra = torch.randn_like(column.expand(-1, self.extra_dim)) if self.extra_dim else None
        jitter = (torch.rand_like(column.expand(-1, N_PIXELS))
                  if self.core.rounding == "stochastic" else None)
        return self.core(noise, conditions, extra, jitter)


class O2Classifier(nn.Module):
    """What O2 runs first: (conditions (B, 9)) -> the core's two outputs."""

    def __init__(self, core: ClassifierCore) -> None:
        super().__init__()
        self.core = core
        self.samples = core.decision == "sample" and has_gate(core.model)

    def forward(self, conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        uniform = torch.rand_like(conditions[:, :1]) if self.samples else None
        return self.core(conditions, uniform)


class VerifiedInputs(nn.Module):
    """A core with only the randomness inputs it uses, in order, for export and checks."""

    def __init__(self, core: nn.Module, slots: tuple[bool, ...]) -> None:
        super().__init__()
        self.core = core
        self.slots = slots

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        given = iter(inputs)
        return self.core(*(next(given) if used else None for used in self.slots))
