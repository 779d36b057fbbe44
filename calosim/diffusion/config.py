"""The diffusion settings every diffusion model's config shares (saved in its model file)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from calosim.diffusion.ancestral import AncestralSampler, AncestralVariance
from calosim.diffusion.base import Sampler
from calosim.diffusion.ddim import DDIMSampler
from calosim.diffusion.dpm_solver import DPMSolverSampler
from calosim.diffusion.prediction import Objective, Prediction
from calosim.diffusion.schedules import NoiseSchedule, ScheduleKind
from calosim.models.base import ModelConfig

SamplerKind = Literal["ddim", "dpm_solver", "ancestral"]
# Settings that change only how a trained model samples, not what it learned.
SAMPLING_SETTINGS = ("sampler", "sampling_steps", "eta", "ancestral_variance", "guidance_scale")


@dataclass
class DiffusionConfig(ModelConfig):
    """Schedule, parameterisation, objective, sampler and guidance of a diffusion model.

    ``condition_dropout``: probability of training a row without its particle (the null
    condition), which enables classifier-free guidance; ``guidance_scale`` w then samples
    with (1 + w) * output(y) - w * output(null) (w = 0: plain conditional sampling).
    """

    diffusion_steps: int = 1000
    schedule: ScheduleKind = "cosine"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    cosine_offset: float = 0.008
    prediction: Prediction = "epsilon"
    objective: Objective = "simple"
    sampler: SamplerKind = "ddim"
    sampling_steps: int = 50
    eta: float = 0.0
    ancestral_variance: AncestralVariance = "posterior"
    condition_dropout: float = 0.0
    guidance_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.diffusion_steps < 2:
            raise ValueError(f"diffusion_steps must be at least 2, got {self.diffusion_steps}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError("need 0 < beta_start < beta_end < 1, got "
                             f"{self.beta_start} and {self.beta_end}")
        if self.cosine_offset <= 0:
            raise ValueError(f"cosine_offset must be positive, got {self.cosine_offset}")
        if self.sampling_steps < 1:
            raise ValueError(f"sampling_steps must be at least 1, got {self.sampling_steps}")
        if self.eta < 0:
            raise ValueError(f"eta must not be negative, got {self.eta}")
        if self.sampler == "dpm_solver" and self.eta != 0:
            raise ValueError("sampler dpm_solver is deterministic: eta must be 0")
        if not 0 <= self.condition_dropout < 1:
            raise ValueError(f"condition_dropout must lie in [0, 1), got {self.condition_dropout}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must not be negative, got {self.guidance_scale}")
        if self.guidance_scale > 0 and self.condition_dropout == 0:
            raise ValueError("guidance_scale > 0 needs condition_dropout > 0 (an unconditional "
                             "model to guide with)")

    def build_schedule(self) -> NoiseSchedule:
        """The noise schedule these settings name."""
        return NoiseSchedule.build(
            self.schedule, self.diffusion_steps, beta_start=self.beta_start,
            beta_end=self.beta_end, cosine_offset=self.cosine_offset,
        )

    def build_sampler(
        self, schedule: NoiseSchedule, clip: tuple[float, float] | None = None
    ) -> Sampler:
        """The sampler these settings name, on ``schedule``."""
        if self.sampler == "ancestral":
            return AncestralSampler(schedule, self.prediction, clip, self.ancestral_variance)
        if self.sampler == "dpm_solver":
            return DPMSolverSampler(schedule, self.prediction, clip, self.sampling_steps)
        return DDIMSampler(schedule, self.prediction, clip, self.sampling_steps, self.eta)


class SamplingSettings:
    """Mixin for diffusion models (``config``: a DiffusionConfig, ``schedule``, ``sampler``):
    change the sampler of a trained model, e.g. fewer DDIM steps for speed."""

    config: DiffusionConfig
    schedule: NoiseSchedule
    sampler: Sampler
    onnx_refusal: ClassVar[str | None] = (
        "its generation runs an iterative diffusion sampler, not one feed-forward graph")

    def sampler_clip(self) -> tuple[float, float] | None:
        """The range the sampler clips x_0 estimates to (None: no clipping)."""
        return None

    def set_sampling(self, **changes: Any) -> None:
        """Replace sampling settings (names in SAMPLING_SETTINGS); the config stays the one
        saved with the model, so a model file written afterwards samples the new way."""
        unknown = sorted(set(changes) - set(SAMPLING_SETTINGS))
        if unknown:
            raise ValueError(f"{unknown[0]} is not a sampling setting "
                             f"(those are: {', '.join(SAMPLING_SETTINGS)})")
        self.config = dataclasses.replace(self.config, **changes)
        self.sampler = self.config.build_sampler(self.schedule, self.sampler_clip())
