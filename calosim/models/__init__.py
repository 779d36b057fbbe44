"""Learned generative models of ZN responses behind the DetectorSimulator interface."""

from calosim.models.base import (
    Batch,
    GenerativeModel,
    LearnedSimulator,
    ModelConfig,
    config_from_dict,
    config_to_dict,
)
from calosim.models.registry import available_models, build_model, model_classes, register

__all__ = [
    "Batch",
    "GenerativeModel",
    "LearnedSimulator",
    "ModelConfig",
    "available_models",
    "build_model",
    "config_from_dict",
    "config_to_dict",
    "model_classes",
    "register",
]
