"""Multiband VAE (Deja et al., IJCAI 2022; thesis ch. 9), conditioned on the particle.

Two latent spaces, as in thesis sections 9.3 and 9.6.4:
- the *local* latent lambda of a task: a continuous part lambda_c ~ q(lambda_c | x, y)
  (Gaussian, KL to N(0, I)) and a binary part lambda_b, sampled with the binary
  Gumbel-softmax (binary concrete) relaxation at a scheduled temperature during training
  and as hard bits with the *recorded bit frequencies* of the task at generation;
- the *global* latent z = t(lambda_c, lambda_b, task code), made by the translator.
  The task code (one-hot) and the bits each pass a small network before they join the
  continuous part, as in thesis appendix 9.6.2.

The global decoder p(x | z, y) also sees the 9 standardised particle attributes: beyond the
paper, this makes the continual model a drop-in conditional simulator. At generation the
task (band) of a particle is chosen by its energy (``task_routing: energy``, the band of
the energy period the particle belongs to; bands were only ever trained with particles of
their own period) or uniformly among the tasks seen (``uniform``, the paper's sampling).

Noise layout of ``generate``: [latent_dim standard normals | n_bits and 1 more standard
normals, turned into uniforms by the normal CDF: the bit draws and the task draw].

The continual training (local phase, translator phase eq. 9.2, joint phase eq. 9.3,
controlled forgetting eq. 9.4) lives in calosim.continual.strategies.multiband; this
module is the network and its single-task loss, so ``calosim train`` with
``model: multiband_vae`` trains one band (task 0) like any other model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from calosim.models.base import Batch
from calosim.models.cvae import LOG_VARIANCE_RANGE, gaussian_kl_to_standard_normal
from calosim.models.registry import register
from calosim.nn.conditional_ae import ConditionalAEConfig, ConditionalAutoencoder
from calosim.nn.conditioning import ConditionalImageDecoder, ConditionalImageEncoder
from calosim.nn.mlp import MLP

TaskRouting = Literal["energy", "uniform"]
# Keeps the logistic noise finite: uniforms are clamped to [EPS, 1 - EPS].
_UNIFORM_EPS = 1e-6


@dataclass
class MultibandVAEConfig(ConditionalAEConfig):
    """Hyper-parameters of the Multiband VAE (backbone fields: ConditionalAEConfig;
    ``latent_dim`` is the size of the continuous local latent)."""

    latent_dim: int = 8
    n_bits: int = 4
    global_dim: int = 32
    max_tasks: int = 10
    translator_hidden: tuple[int, ...] = (128,)
    code_hidden: tuple[int, ...] = (16,)
    code_features: int = 12
    activation: Literal["relu", "leaky_relu", "elu", "silu", "tanh"] = "leaky_relu"
    kl_weight: float = 1e-3
    task_routing: TaskRouting = "energy"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_bits", "global_dim", "max_tasks", "code_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if any(width < 1 for width in (*self.translator_hidden, *self.code_hidden)):
            raise ValueError("translator and code layer widths must be positive")
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight must not be negative, got {self.kl_weight}")
        if self.task_routing == "energy" and not self.is_zn:
            raise ValueError("task_routing energy reads the particle energy of ZN conditions; "
                             "use uniform for other images")


def relaxed_bits(logits: torch.Tensor, uniform: torch.Tensor, temperature: float) -> torch.Tensor:
    """Binary Gumbel-softmax (binary concrete) sample in (0, 1) from Bernoulli logits.

    The two-class Gumbel-softmax reduces to sigmoid((logit + logistic noise) / temperature),
    logistic noise = log u - log(1 - u); low temperatures give nearly hard bits.
    """
    u = uniform.clamp(_UNIFORM_EPS, 1 - _UNIFORM_EPS)
    return torch.sigmoid((logits + u.log() - (-u).log1p()) / temperature)


def bernoulli_kl_to_half(probabilities: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(p) || Bernoulli(1/2)), summed over bits, averaged over rows."""
    p = probabilities.clamp(_UNIFORM_EPS, 1 - _UNIFORM_EPS)
    per_bit = p * (2 * p).log() + (1 - p) * (2 * (1 - p)).log()
    return per_bit.sum(dim=1).mean()


class Translator(nn.Module):
    """t(lambda_c, lambda_b, task) -> z: the task code and the bits each go through a small
    network, then join the continuous latent in an MLP to the global latent."""

    def __init__(self, c: MultibandVAEConfig) -> None:
        super().__init__()
        self.task_features = MLP(c.max_tasks, c.code_hidden, c.code_features,
                                 activation_name=c.activation, final_activation=c.activation)
        self.bit_features = MLP(c.n_bits, c.code_hidden, c.code_features,
                                activation_name=c.activation, final_activation=c.activation)
        self.head = MLP(c.latent_dim + 2 * c.code_features, c.translator_hidden, c.global_dim,
                        activation_name=c.activation)
        self.max_tasks = c.max_tasks

    def forward(
        self, continuous: torch.Tensor, bits: torch.Tensor, tasks: torch.Tensor
    ) -> torch.Tensor:
        task_code = F.one_hot(tasks, self.max_tasks).to(continuous.dtype)
        joined = torch.cat(
            [continuous, self.task_features(task_code), self.bit_features(bits)], dim=1
        )
        return self.head(joined)


@register("multiband_vae")
class MultibandVAE(ConditionalAutoencoder):
    """Local encoder q(lambda | x, y), translator t(lambda, task) -> z and global decoder
    p(x | z, y), with per-task bit frequencies and energy ranges kept as buffers."""

    config_class = MultibandVAEConfig
    config: MultibandVAEConfig

    def __init__(self, config: MultibandVAEConfig) -> None:
        # Not ConditionalAutoencoder.__init__: the encoder has extra bit outputs and the
        # decoder reads the global latent, so both are built here; the class is still a
        # ConditionalAutoencoder for its reconstruction loss and decode/generate contract.
        nn.Module.__init__(self)
        self.config = c = config
        encoder_activation = "leaky_relu" if c.encoder == "conv" and c.activation == "relu" \
            else c.activation
        self.encoder = ConditionalImageEncoder(
            c.image_shape, c.condition_dim, c.encoder_hidden, 2 * c.latent_dim + c.n_bits,
            kind=c.encoder, channels=c.encoder_channels, activation_name=encoder_activation,
            batch_norm=c.encoder == "conv",
        )
        self.translator = Translator(c)
        self.decoder = ConditionalImageDecoder(
            c.global_dim, c.condition_dim, c.decoder_hidden, c.image_shape,
            kind=c.decoder, channels=c.decoder_channels, activation_name=c.activation,
        )
        self.register_buffer("bit_frequencies", torch.full((c.max_tasks, c.n_bits), 0.5))
        self.register_buffer("task_energy", torch.zeros(c.max_tasks, 2))
        self.register_buffer("n_tasks_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("current_task", torch.zeros((), dtype=torch.long))
        self.register_buffer("temperature", torch.ones(()))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim + self.config.n_bits + 1,)

    # ------------------------------------------------------------------ pieces

    def encode(
        self, images: torch.Tensor, conditions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean and log variance of q(lambda_c | x, y) and the logits of the bits."""
        d = self.config.latent_dim
        out = self.encoder(images, conditions)
        mean, log_variance, bit_logits = out[:, :d], out[:, d : 2 * d], out[:, 2 * d :]
        return mean, log_variance.clamp(*LOG_VARIANCE_RANGE), bit_logits

    def translate(
        self, continuous: torch.Tensor, bits: torch.Tensor, tasks: torch.Tensor
    ) -> torch.Tensor:
        """The global latent z of local latents from band ``tasks`` (long, (B,))."""
        return self.translator(continuous, bits, tasks)

    def task_code_range(self) -> int:
        """How many bands generation chooses from (at least 1, before any training)."""
        return max(int(self.n_tasks_seen), 1)

    def route(self, conditions: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """The band of each particle: by its standardised energy (nearest task energy
        range among the tasks seen) or uniformly among them, per ``task_routing``."""
        n_tasks = self.task_code_range()
        if self.config.task_routing == "uniform" or int(self.n_tasks_seen) == 0:
            return (uniform * n_tasks).long().clamp(max=n_tasks - 1)
        ranges = self.task_energy[:n_tasks]
        energy = conditions[:, :1]
        below = (ranges[:, 0][None, :] - energy).clamp(min=0)
        above = (energy - ranges[:, 1][None, :]).clamp(min=0)
        return (below + above).argmin(dim=1)

    def sample_local(
        self, noise: torch.Tensor, tasks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior draws of band ``tasks``: lambda_c from the normals, hard bits that are 1
        with the recorded frequency of their task (uniform < frequency)."""
        d, n_bits = self.config.latent_dim, self.config.n_bits
        uniforms = torch.special.ndtr(noise[:, d : d + n_bits])
        bits = (uniforms < self.bit_frequencies[tasks]).to(noise.dtype)
        return noise[:, :d], bits

    def decode(self, codes: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Global latent z (B, global_dim) and conditions (B, 9) -> log-space images."""
        return self.decoder(codes, conditions)

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        task_uniform = torch.special.ndtr(noise[:, -1])
        tasks = self.route(conditions, task_uniform)
        continuous, bits = self.sample_local(noise, tasks)
        return self.decode(self.translate(continuous, bits, tasks), conditions)

    # ---------------------------------------------------------------- training

    def record_task(self, task: int, bit_frequencies: torch.Tensor,
                    energy_range: tuple[float, float]) -> None:
        """Remember band ``task``: its bit frequencies (mean bit probabilities over its
        training data) and its standardised energy range; count it as seen."""
        if not 0 <= task < self.config.max_tasks:
            raise ValueError(f"task {task} outside 0..{self.config.max_tasks - 1} (max_tasks)")
        with torch.no_grad():
            self.bit_frequencies[task] = bit_frequencies.to(self.bit_frequencies)
            self.task_energy[task] = torch.tensor(energy_range, dtype=self.task_energy.dtype)
            self.n_tasks_seen.fill_(max(int(self.n_tasks_seen), task + 1))

    def local_losses(
        self, batch: Batch, tasks: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Negative ELBO (eq. 9.1) of the batch through the translator of band ``tasks``,
        with the binary concrete at ``self.temperature``; also the bit probabilities."""
        c = self.config
        mean, log_variance, bit_logits = self.encode(batch.images, batch.conditions)
        continuous = mean + (0.5 * log_variance).exp() * batch.randn(*mean.shape)
        bits = relaxed_bits(bit_logits, batch.rand(*bit_logits.shape), float(self.temperature))
        reconstruction = self.decode(self.translate(continuous, bits, tasks), batch.conditions)
        losses = self.reconstruction_losses(batch.images, reconstruction)
        probabilities = torch.sigmoid(bit_logits)
        losses["kl"] = gaussian_kl_to_standard_normal(mean, log_variance)
        losses["bit_kl"] = bernoulli_kl_to_half(probabilities)
        losses["loss"] = losses.pop("weighted") + c.kl_weight * (losses["kl"] + losses["bit_kl"])
        return losses, probabilities.detach()

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        tasks = self.current_task.expand(batch.images.shape[0])
        return self.local_losses(batch, tasks)[0]
