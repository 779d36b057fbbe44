"""Denoising diffusion: noise schedules, network parameterisations, samplers.

Building blocks of the diffusion models in calosim.models (ddpm, daed, joint_diffusion,
latent_diffusion); see thesis sec. 2.3 for the formulation followed here.
"""

from calosim.diffusion.ancestral import AncestralSampler
from calosim.diffusion.base import DenoiseFunction, Sampler
from calosim.diffusion.config import SAMPLING_SETTINGS, DiffusionConfig, SamplingSettings
from calosim.diffusion.ddim import DDIMSampler
from calosim.diffusion.dpm_solver import DPMSolverSampler
from calosim.diffusion.noise import StepNoise
from calosim.diffusion.prediction import (
    diffusion_loss,
    prediction_target,
    split_prediction,
    vlb_weights,
)
from calosim.diffusion.schedules import NoiseSchedule

__all__ = [
    "SAMPLING_SETTINGS",
    "AncestralSampler",
    "DDIMSampler",
    "DPMSolverSampler",
    "DenoiseFunction",
    "DiffusionConfig",
    "NoiseSchedule",
    "Sampler",
    "SamplingSettings",
    "StepNoise",
    "diffusion_loss",
    "prediction_target",
    "split_prediction",
    "vlb_weights",
]
