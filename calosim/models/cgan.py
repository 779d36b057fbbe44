"""Conditional GAN (Goodfellow et al. 2014; Radford et al. 2015; Mirza and Osindero 2014),
the "cond DCGAN" baseline of thesis table 4.3.1, with a WGAN-GP objective (Gulrajani et al.
2017) as the default because it trains more stably on sparse 44 x 44 responses.

Generator G(eps, y): standard normal noise joined with the particle, through the same
decoder backbone as the e2e Sinkhorn AE. Critic D(x, y): strided convolutions over the
log-space response, the particle joined after the first dense layer.

``loss: wgan_gp``: the critic minimises D(G(eps, y), y) - D(x, y) + lambda * (|grad D| - 1)^2
on interpolates of real and generated responses; the generator minimises -D(G(eps, y), y).
``loss: bce``: the DCGAN game (thesis eq. 2.5) with the non-saturating generator loss.

One training step makes ``critic_steps`` critic updates, each on its own slice of the
batch, then one generator update on the whole batch; each optimiser holds only its own
player's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from calosim.data.schema import N_ATTRIBUTES, RESPONSE_SHAPE
from calosim.models.base import Batch, GenerativeModel, ModelConfig, with_penalty
from calosim.models.registry import register
from calosim.nn.conditional_ae import Activation, Backbone, check_backbone
from calosim.nn.conditioning import ConditionalImageDecoder, ConditionalImageEncoder


@dataclass
class CGANConfig(ModelConfig):
    """Hyper-parameters of the conditional GAN."""

    noise_dim: int = 10
    generator: Backbone = "mlp"
    generator_hidden: tuple[int, ...] = (128, 384)
    generator_channels: tuple[int, ...] = (16, 8)
    activation: Activation = "relu"
    nonnegative_output: bool = True
    critic: Backbone = "conv"
    critic_hidden: tuple[int, ...] = (256, 128)
    critic_channels: tuple[int, ...] = (16, 32, 32)
    critic_activation: Activation = "leaky_relu"
    critic_batch_norm: bool = False
    loss: Literal["wgan_gp", "bce"] = "wgan_gp"
    gradient_penalty: float = 10.0
    critic_steps: int = 5
    critic_lr_ratio: float = 1.0
    adam_betas: tuple[float, ...] = (0.5, 0.9)

    def __post_init__(self) -> None:
        for name in ("noise_dim", "critic_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.gradient_penalty < 0:
            raise ValueError(f"gradient_penalty must not be negative, got {self.gradient_penalty}")
        if self.critic_lr_ratio <= 0:
            raise ValueError(f"critic_lr_ratio must be positive, got {self.critic_lr_ratio}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be 2 numbers in [0, 1), got {list(self.adam_betas)}")
        if self.loss == "wgan_gp" and self.critic_batch_norm:
            # the gradient penalty is per response; batch norm mixes responses of a batch
            raise ValueError("critic_batch_norm cannot be used with loss wgan_gp")
        check_backbone("generator", self.generator, self.generator_hidden,
                       self.generator_channels, upsamples=True)
        check_backbone("critic", self.critic, self.critic_hidden, self.critic_channels,
                       upsamples=False)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Switch off gradients of ``module``'s parameters for the block (restored after)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


@register("cgan")
class ConditionalGAN(GenerativeModel):
    """Conditional GAN with a convolutional critic (WGAN-GP or DCGAN objective)."""

    config_class = CGANConfig
    config: CGANConfig

    def __init__(self, config: CGANConfig) -> None:
        super().__init__(config)
        c = config
        self.generator = ConditionalImageDecoder(
            c.noise_dim, N_ATTRIBUTES, c.generator_hidden, RESPONSE_SHAPE,
            kind=c.generator, channels=c.generator_channels, activation_name=c.activation,
        )
        self.critic = ConditionalImageEncoder(
            RESPONSE_SHAPE, N_ATTRIBUTES, c.critic_hidden, 1, kind=c.critic,
            channels=c.critic_channels, activation_name=c.critic_activation,
            batch_norm=c.critic_batch_norm,
        )

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.config.noise_dim,)

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        images = self.generator(noise, conditions)
        # 96 % of real pixels are exactly zero: a ReLU lets the generator hit zero exactly
        return F.relu(images) if self.config.nonnegative_output else images

    def score(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Critic output (B,): high for responses it takes for real ones of ``conditions``."""
        return self.critic(images, conditions).squeeze(1)

    # ---------------------------------------------------------------------- losses

    def critic_losses(
        self, real: torch.Tensor, fake: torch.Tensor, conditions: torch.Tensor, batch: Batch
    ) -> dict[str, torch.Tensor]:
        """The critic's objective "critic" on real and (detached) generated responses."""
        real_scores = self.score(real, conditions)
        fake_scores = self.score(fake, conditions)
        if self.config.loss == "bce":
            critic = (
                F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
            )
            return {"critic": critic}
        wasserstein = real_scores.mean() - fake_scores.mean()
        penalty = self.gradient_penalty(real, fake, conditions, batch)
        return {
            "critic": -wasserstein + self.config.gradient_penalty * penalty,
            "wasserstein": wasserstein,
            "gradient_penalty": penalty,
        }

    def gradient_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, conditions: torch.Tensor, batch: Batch
    ) -> torch.Tensor:
        """Mean of (|d critic / d x| - 1)^2 at random points between real and fake responses."""
        mixing = batch.rand(real.shape[0], 1, 1)
        between = (mixing * real + (1.0 - mixing) * fake).requires_grad_(True)
        (gradient,) = torch.autograd.grad(
            self.score(between, conditions).sum(), between, create_graph=True
        )
        return (gradient.flatten(1).norm(dim=1) - 1.0).square().mean()

    def generator_loss(self, conditions: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The generator's objective on fresh noise for ``conditions``."""
        fake = self.generate(batch.randn(conditions.shape[0], *self.noise_shape), conditions)
        scores = self.score(fake, conditions)
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
        return -scores.mean()

    def _fake(self, conditions: torch.Tensor, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            return self.generate(batch.randn(conditions.shape[0], *self.noise_shape), conditions)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Both players' objectives on the whole batch; "loss" is their sum, a number to
        watch for divergence only: each optimiser minimises its own player's objective."""
        losses = self.critic_losses(
            batch.images, self._fake(batch.conditions, batch), batch.conditions, batch
        )
        losses["generator"] = self.generator_loss(batch.conditions, batch)
        losses["loss"] = losses["critic"] + losses["generator"]
        return losses

    # -------------------------------------------------------------------- training

    def configure_optimisers(
        self, learning_rate: float, weight_decay: float
    ) -> list[torch.optim.Optimizer]:
        """[generator Adam, critic Adam]; the critic's rate is ``critic_lr_ratio`` times."""
        betas = (self.config.adam_betas[0], self.config.adam_betas[1])
        return [
            torch.optim.Adam(self.generator.parameters(), lr=learning_rate, betas=betas,
                             weight_decay=weight_decay),
            torch.optim.Adam(self.critic.parameters(),
                             lr=learning_rate * self.config.critic_lr_ratio, betas=betas,
                             weight_decay=weight_decay),
        ]

    def training_step(
        self,
        batch: Batch,
        optimisers: Sequence[torch.optim.Optimizer],
        grad_clip: float | None = None,
        penalty: Callable[[], Mapping[str, torch.Tensor]] | None = None,
    ) -> dict[str, float]:
        """``critic_steps`` critic updates on slices of the batch, then one generator
        update; returns the critic losses averaged over its updates and the generator's.
        ``penalty`` (a continual strategy's terms) joins the generator's objective."""
        generator_optimiser, critic_optimiser = optimisers
        sums: dict[str, float] = {}
        rows_of_batch = torch.arange(batch.images.shape[0], device=batch.images.device)
        slices = rows_of_batch.chunk(self.config.critic_steps)
        for rows in slices:
            images, conditions = batch.images[rows], batch.conditions[rows]
            critic_optimiser.zero_grad(set_to_none=True)
            parts = self.critic_losses(images, self._fake(conditions, batch), conditions, batch)
            parts["critic"].backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(self.critic.parameters(), grad_clip)
            critic_optimiser.step()
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / len(slices)

        generator_optimiser.zero_grad(set_to_none=True)
        with frozen(self.critic):
            objective = with_penalty({"loss": self.generator_loss(batch.conditions, batch)},
                                     penalty)
            objective["loss"].backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(self.generator.parameters(), grad_clip)
        generator_optimiser.step()
        sums.update({name: float(value.detach()) for name, value in objective.items()
                     if name != "loss"})
        sums["generator"] = float(objective["loss"].detach())
        sums["loss"] = sums["critic"] + sums["generator"]
        return sums
