"""Joint diffusion: a DDPM and a classifier sharing the U-Net encoder (thesis ch. 6).

The encoder's feature maps Z_t = e(x_t) are average-pooled into one vector z_t, and a
classifier g (two linear layers with a LeakyReLU) predicts the class of the particle
from it. The joint loss (eq. 6.8) adds the cross entropy of g(e(x_0)) to the diffusion
loss; with ``noisy_classifier`` the cross entropy of g(e(x_t)) at the diffusion loss's
own step t is added as well (eq. 6.10, T = {1..noisy_classifier_max_step}).

Sampling by representation optimisation (Algorithm 1): at every step the pooled
representation takes one gradient step alpha * grad_z log g(y | z) towards the target
class before decoding; the step is spread uniformly over each feature map (a shift of
its mean), so alpha does not depend on the map sizes. For the noise-predicting
parameterisation the thesis writes Z' = Z + alpha grad log g, which a positive
``representation_step`` follows; a negative one steps the other way.

The particle enters only the decoder, so the encoder features (the classifier's input)
describe the image alone. ``condition_on_attributes: false`` drops it from the decoder
too: the classic joint model, conditioned on the class only through Algorithm 1.

Classes for ZN: "family" (0 photon/electron, 1 neutral hadron, 2 charged hadron) or
"energy_bin" (equal-frequency energy bins). The model sees only standardised attributes,
so the class boundaries are fitted on the first training batch with rules that do not
depend on the standardisation (an affine map per column): energy-bin edges are
quantiles of the standardised energy; a particle is electromagnetic when its mass lies
within 1 % of the batch's mass range above the lightest (photons and electrons; any
hadron is >= 135 MeV) and neutral when its charge equals the batch's most common
charge value (neutral particles dominate ZN data). The fitted boundaries are buffers,
saved in the model file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from calosim.data.schema import PARTICLE_COLUMNS
from calosim.errors import CalosimError
from calosim.models.base import Batch
from calosim.models.ddpm import ConditionalDDPM, DDPMConfig
from calosim.models.registry import register
from calosim.nn.mlp import MLP
from calosim.nn.unet import pooled_features

ClassSource = Literal["family", "energy_bin"]
FAMILIES = ("photon/electron", "neutral hadron", "charged hadron")
_ENERGY, _MASS, _CHARGE = (PARTICLE_COLUMNS.index(c) for c in ("Energy", "mass", "charge"))
_EM_MASS_FRACTION = 0.01  # of the batch's mass range: electrons (0.5 MeV) in, pions out
_SAME_CHARGE = 1e-3  # standardised charges are identical floats for identical raw charges


@dataclass
class JointDiffusionConfig(DDPMConfig):
    """Hyper-parameters of joint diffusion: the DDPM's plus the classifier's."""

    class_source: ClassSource = "family"
    energy_bins: int = 5
    classifier_hidden: int = 128
    classifier_weight: float = 1.0
    noisy_classifier: bool = True
    noisy_classifier_max_step: int | None = None
    representation_step: float = 0.0
    condition_on_attributes: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.energy_bins < 2:
            raise ValueError(f"energy_bins must be at least 2, got {self.energy_bins}")
        if self.classifier_hidden < 1:
            raise ValueError(f"classifier_hidden must be positive, got {self.classifier_hidden}")
        if self.classifier_weight < 0:
            raise ValueError(f"classifier_weight must not be negative, got "
                             f"{self.classifier_weight}")
        if self.noisy_classifier_max_step is not None and not (
            1 <= self.noisy_classifier_max_step <= self.diffusion_steps
        ):
            raise ValueError(f"noisy_classifier_max_step must lie in 1..{self.diffusion_steps}")
        if self.guidance_scale > 0 and not self.condition_on_attributes:
            raise ValueError("guidance_scale needs condition_on_attributes: true (classifier-free "
                             "guidance contrasts the particle with no particle)")

    @property
    def n_classes(self) -> int:
        return len(FAMILIES) if self.class_source == "family" else self.energy_bins


@register("joint_diffusion")
class JointDiffusion(ConditionalDDPM):
    """Conditional DDPM whose U-Net encoder also feeds a particle classifier."""

    config_class = JointDiffusionConfig
    config: JointDiffusionConfig
    condition_in_encoder: ClassVar[bool] = False

    def __init__(self, config: JointDiffusionConfig) -> None:
        super().__init__(config)
        if not config.condition_on_attributes:
            self.network.condition_embedding = None
        feature_width = sum(f.shape[1] for f in self._probe_features())
        self.classifier = MLP(feature_width, (config.classifier_hidden,), config.n_classes,
                              activation_name="leaky_relu")
        # class boundaries in standardised units, fitted on the first training batch
        self.register_buffer("classes_fitted", torch.tensor(False))
        self.register_buffer("energy_edges", torch.zeros(config.energy_bins - 1))
        self.register_buffer("em_mass_below", torch.tensor(0.0))
        self.register_buffer("neutral_charge", torch.tensor(0.0))
        # a host-side copy of classes_fitted: reading the buffer at every step would stall a
        # GPU (a device-to-host copy per step); loading a state refreshes it
        self._classes_ready = False
        self.register_load_state_dict_post_hook(_refresh_classes_ready)

    def _probe_features(self) -> list[torch.Tensor]:
        with torch.no_grad():
            probe = torch.zeros(1, *self.noise_shape)
            emb, _ = self.network.embed(torch.zeros(1, dtype=torch.long))
            return self.network.encode(probe, emb)

    # ---------------------------------------------------------------------- classes

    def fit_classes(self, conditions: torch.Tensor) -> None:
        """Fit the class boundaries on (standardised) training conditions."""
        energy = conditions[:, _ENERGY]
        quantiles = torch.arange(1, self.config.energy_bins, device=energy.device,
                                 dtype=energy.dtype) / self.config.energy_bins
        self.energy_edges.copy_(torch.quantile(energy, quantiles))
        mass = conditions[:, _MASS]
        self.em_mass_below.copy_(mass.min() + _EM_MASS_FRACTION * (mass.max() - mass.min()))
        charges, counts = torch.unique(conditions[:, _CHARGE], return_counts=True)
        self.neutral_charge.copy_(charges[counts.argmax()])
        self.classes_fitted.fill_(True)
        self._classes_ready = True

    def class_labels(self, conditions: torch.Tensor) -> torch.Tensor:
        """(B,) class of each standardised particle (family or energy bin)."""
        if not self._classes_ready:
            raise CalosimError("joint diffusion: class boundaries are not fitted yet (the "
                               "model has not been trained)")
        if self.config.class_source == "energy_bin":
            return torch.bucketize(conditions[:, _ENERGY].contiguous(), self.energy_edges)
        hadron = conditions[:, _MASS] >= self.em_mass_below
        charged = (conditions[:, _CHARGE] - self.neutral_charge).abs() > _SAME_CHARGE
        return torch.where(hadron, 1 + charged.long(), torch.zeros_like(charged.long()))

    def class_logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        """g(z): class logits from the pooled encoder features."""
        return self.classifier(pooled_features(features))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 44, 44) log-space images -> (B, n_classes) logits from e(x_0)."""
        x0 = self.to_model_space(images)
        emb, _ = self.network.embed(torch.zeros(x0.shape[0], dtype=torch.long,
                                                device=x0.device))
        return self.class_logits(self.network.encode(x0, emb))

    # --------------------------------------------------------------------- training

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        if not self._classes_ready:
            self.fit_classes(batch.conditions)
        labels = self.class_labels(batch.conditions)
        x0 = self.to_model_space(batch.images)
        diffusion, t, noisy_features = self.diffusion_terms(batch, x0)
        logits = self.classify(batch.images)
        classifier = F.cross_entropy(logits, labels)
        losses = {"diffusion": diffusion, "classifier": classifier,
                  "accuracy": (logits.argmax(dim=1) == labels).float().mean().detach()}
        total = diffusion + c.classifier_weight * classifier
        if c.noisy_classifier:
            max_step = c.noisy_classifier_max_step or self.schedule.n_steps
            in_range = (t <= max_step).to(diffusion.dtype)
            noisy = F.cross_entropy(self.class_logits(noisy_features), labels, reduction="none")
            losses["noisy_classifier"] = (noisy * in_range).sum() / in_range.sum().clamp(min=1)
            total = total + c.classifier_weight * losses["noisy_classifier"]
        losses["loss"] = total
        return losses

    # ------------------------------------------------------------------- generation

    def edit_features(
        self, features: list[torch.Tensor], t: int, conditions: torch.Tensor
    ) -> list[torch.Tensor]:
        """Algorithm 1: one gradient step of the pooled representation towards the class of
        each particle, spread uniformly over every feature map."""
        step = self.config.representation_step
        if step == 0:
            return features
        labels = self.class_labels(conditions)
        pooled = pooled_features(features).detach()
        # sampling runs under inference mode; the classifier gradient needs autograd
        with torch.inference_mode(False), torch.enable_grad():
            z = pooled.clone().requires_grad_(True)
            log_p = F.log_softmax(self.classifier(z), dim=1)
            chosen = log_p.gather(1, labels.clone()[:, None]).sum()
            (gradient,) = torch.autograd.grad(chosen, z)
        shifts = (step * gradient).split([f.shape[1] for f in features], dim=1)
        return [f + s[:, :, None, None].to(f.dtype) for f, s in zip(features, shifts, strict=True)]


def _refresh_classes_ready(model: JointDiffusion, _incompatible_keys: object) -> None:
    model._classes_ready = bool(model.classes_fitted)
