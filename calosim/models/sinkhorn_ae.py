"""Conditional end-to-end Sinkhorn autoencoder with a noise generator (Deja et al. 2020;
thesis ch. 4.3).

Three networks: an encoder q (response -> latent code, no prior imposed), a decoder p
(code -> response in log(1 + counts) space) and a noise generator n(eps, y) (standard
normal noise and standardised particle -> code). The loss (eq. 4.7 with 4.8) is

    alpha * [MSE + w_lap * LaplacianL1 + w_ch * ChannelError](x, p(q(x)))
    + beta * Sinkhorn([q(x), s*w*y], [n(eps, y), s*w*y])
    + delta * diversity(q(x)) + l2 * |last encoder layer|^2

and the Sinkhorn gradient trains both the encoder and the noise generator. The
per-attribute weights w (all 1 by default) scale the cost of pairing different particles
(the thesis suggests scaling conditions by their effect). The channel term (not in the
paper) compares the 5 ZN channel sums of the images in photon counts: a per-pixel loss
in log space alone under-counts (the mean of a log is below the log of a mean), and
these sums are what physics validation reads.

After the epochs an optional refinement (``refine_steps``; not in the paper) refits the
noise generator alone to the codes of the training set by the energy score, encoder and
decoder frozen: the batch Sinkhorn leaves the codes of rare conditions under-dispersed,
and on the ZN set the refit brings the channel W1 from about 3x to 1.2-1.5x the noise
floor (validation/zdc_baselines/results.md). Then (``shape_refit_steps``) a
channel-totals decoder's pixel logits alone are refitted to the photons' likelihood, which
moves light within channels only: with the log-space pixel terms a third of a response's
light ended in one fibre. Last (``totals_refit_steps``) its 5 channel-total outputs alone
are refitted to the training responses' channel sums, which removes the few per cent by
which each run's sums ended off.

The MLP encoder also receives log(1 + x) of the 5 channel sums of its input, so the
code can carry them exactly. The decoder is an MLP (``decoder: mlp``), a transposed-conv
net (``conv``), or, for ZN responses, an MLP whose 5 channel sums are outputs of their own
(``channel_totals``, calosim.nn.channel_decoder): the channel term then trains the sums
directly instead of bargaining with the pixel terms. With that decoder, ``shape_loss:
photon_likelihood`` replaces the log-space pixel terms (MSE and Laplacian) by the
likelihood of where each channel's photons fall (calosim.nn.losses.channel_shape_divergence):
a log-space loss favours pixel values below their mean, and with the sums fixed the light
this leaves over went to one pixel per channel. Generation runs only n and p, sized
for CPU throughput. An optional gate (a classifier of y, as in the ALICE deployment)
decides which particles give an empty response; the AE is then trained on the non-empty
ones only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from calosim.data.transforms import counts_from_log, log_counts
from calosim.errors import CalosimError
from calosim.metrics import N_CHANNELS, channels
from calosim.models.base import Batch, DataShapeConfig, DecodedGeneration, GenerativeModel
from calosim.models.registry import register
from calosim.nn.channel_decoder import ChannelTotalsDecoder
from calosim.nn.conv import ConvDecoder, ConvEncoder
from calosim.nn.losses import (
    ConditionalSinkhorn,
    channel_error,
    channel_shape_divergence,
    channel_sum_error,
    energy_score,
    laplacian_pyramid_l1,
    latent_diversity,
)
from calosim.nn.mlp import MLP, ImageMLPDecoder, ImageMLPEncoder

Activation = Literal["relu", "leaky_relu", "elu", "silu", "tanh"]
# responses kept for the shape refit: 1936 numbers each, so about 250 MB
SHAPE_FIT_ROWS = 32768
# responses of the full-batch totals refit: its hidden features take about 0.5 GB
TOTALS_FIT_ROWS = 262144


class RefitData(NamedTuple):
    """What the refinement fits to: the frozen encoder's codes of the non-empty training
    responses, their conditions, and optionally some of the responses (log space) and
    all their channel sums."""

    codes: torch.Tensor
    conditions: torch.Tensor
    images: torch.Tensor | None
    sums: torch.Tensor | None


@dataclass
class SinkhornAEConfig(DataShapeConfig):
    """Hyper-parameters of the conditional e2e Sinkhorn autoencoder; the defaults are the
    tuned ones of configs/zdc/e2e_sae.yaml (condition_weights: Energy, Vx, Vy, Vz, Px,
    Py, Pz, mass, charge; empty means all 1)."""

    latent_dim: int = 10
    noise_dim: int = 10
    encoder: Literal["mlp", "conv"] = "mlp"
    encoder_hidden: tuple[int, ...] = (512, 128)
    encoder_channels: tuple[int, ...] = (16, 32, 32)
    encoder_channel_inputs: bool = True
    decoder: Literal["mlp", "conv", "channel_totals"] = "mlp"
    decoder_hidden: tuple[int, ...] = (256, 512)
    decoder_channels: tuple[int, ...] = (16, 8)
    noise_hidden: tuple[int, ...] = (128, 128, 128)
    activation: Activation = "relu"
    reconstruction_weight: float = 1.0
    laplacian_weight: float = 1.0
    laplacian_levels: int = 3
    channel_weight: float = 3.0
    channel_loss: Literal["l1", "log_mse"] = "l1"
    channel_scale: float = 100.0
    shape_loss: Literal["log_pixels", "photon_likelihood"] = "log_pixels"
    sinkhorn_weight: float = 1.0
    sinkhorn_blur: float = 0.03
    sinkhorn_scaling: float = 0.5
    condition_scale: float = 0.3
    condition_weights: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.3, 1.0, 1.0)
    refine_steps: int = 0
    refine_batch_size: int = 1024
    refine_draws: int = 4
    refine_learning_rate: float = 1e-3
    refine_ema_decay: float = 0.99
    shape_refit_steps: int = 0
    totals_refit_steps: int = 0
    diversity_weight: float = 0.0
    diversity_threshold: float = 0.5
    encoder_l2: float = 1e-4
    gate: bool = True
    gate_hidden: tuple[int, ...] = (64, 64)

    file_defaults: ClassVar[dict[str, Any]] = {"encoder_channel_inputs": False}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_zn(channel_weight=self.channel_weight,
                        encoder_channel_inputs=self.encoder_channel_inputs)
        if self.decoder == "channel_totals" and not self.is_zn:
            raise ValueError("decoder: channel_totals predicts the 5 ZN channel sums, which "
                             f"images of shape {list(self.image_shape)} lack; use mlp or conv")
        if self.shape_loss == "photon_likelihood" and self.decoder != "channel_totals":
            raise ValueError("shape_loss: photon_likelihood needs decoder: channel_totals")
        for name in ("shape_refit_steps", "totals_refit_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
            if getattr(self, name) > 0 and self.decoder != "channel_totals":
                raise ValueError(f"{name} needs decoder: channel_totals")
        if self.gate and self.condition_dim == 0:
            raise ValueError("gate needs conditions (condition_dim > 0); set gate: false")
        if self.refine_draws < 2:
            raise ValueError(f"refine_draws must be at least 2, got {self.refine_draws}")
        if self.refine_steps < 0 or self.refine_batch_size < 1:
            raise ValueError("refine_steps must not be negative, refine_batch_size positive")
        if self.refine_learning_rate <= 0 or not 0 <= self.refine_ema_decay < 1:
            raise ValueError("refine_learning_rate must be positive, refine_ema_decay in [0, 1)")
        for name in ("latent_dim", "noise_dim", "laplacian_levels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("reconstruction_weight", "laplacian_weight", "channel_weight",
                     "sinkhorn_weight", "diversity_weight", "encoder_l2", "condition_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.condition_weights and (
            len(self.condition_weights) != self.condition_dim
            or min(self.condition_weights) < 0
        ):
            raise ValueError(
                f"condition_weights must be empty or {self.condition_dim} numbers >= 0 (one per "
                f"condition column), got {list(self.condition_weights)}"
            )
        if self.channel_scale <= 0:
            raise ValueError(f"channel_scale must be positive, got {self.channel_scale}")
        if self.sinkhorn_blur <= 0:
            raise ValueError(f"sinkhorn_blur must be positive, got {self.sinkhorn_blur}")
        if not 0 < self.sinkhorn_scaling < 1:
            raise ValueError(f"sinkhorn_scaling must lie in (0, 1), got {self.sinkhorn_scaling}")
        if not 0 <= self.diversity_threshold <= 1:
            raise ValueError(
                f"diversity_threshold must lie in [0, 1], got {self.diversity_threshold}"
            )
        widths = (*self.encoder_hidden, *self.decoder_hidden, *self.noise_hidden,
                  *self.encoder_channels, *self.decoder_channels, *self.gate_hidden)
        if any(w < 1 for w in widths):
            raise ValueError("layer widths and channel counts must be positive")
        if self.encoder_channel_inputs and self.encoder != "mlp":
            raise ValueError("encoder_channel_inputs needs encoder: mlp")
        if self.decoder == "conv" and (not self.decoder_channels or len(self.decoder_channels) > 2):
            raise ValueError("a conv decoder needs 1 or 2 decoder_channels (44 = 11 * 2 * 2)")


@register("e2e_sae")
class SinkhornAutoencoder(DecodedGeneration, GenerativeModel):
    """Conditional end-to-end Sinkhorn autoencoder with noise generator."""

    config_class = SinkhornAEConfig
    config: SinkhornAEConfig

    def __init__(self, config: SinkhornAEConfig) -> None:
        super().__init__(config)
        c = config
        if c.encoder == "conv":
            self.encoder: nn.Module = ConvEncoder(
                c.image_shape, c.encoder_channels, c.encoder_hidden, c.latent_dim,
                activation_name="leaky_relu" if c.activation == "relu" else c.activation,
            )
        else:
            self.encoder = ImageMLPEncoder(
                c.image_shape, c.encoder_hidden, c.latent_dim, activation_name=c.activation,
                extra_features=N_CHANNELS if c.encoder_channel_inputs else 0,
            )
        if c.decoder == "conv":
            self.decoder: nn.Module = ConvDecoder(
                c.latent_dim, c.decoder_hidden, c.decoder_channels, c.image_shape,
                activation_name=c.activation,
            )
        elif c.decoder == "channel_totals":
            self.decoder = ChannelTotalsDecoder(
                c.latent_dim, c.decoder_hidden, c.image_shape, activation_name=c.activation,
                initial_total=c.channel_scale,  # the typical channel sum
            )
        else:
            self.decoder = ImageMLPDecoder(
                c.latent_dim, c.decoder_hidden, c.image_shape, activation_name=c.activation
            )
        self.noise_generator = MLP(
            c.noise_dim + c.condition_dim, c.noise_hidden, c.latent_dim,
            activation_name=c.activation,
        )
        self.gate = (
            MLP(c.condition_dim, c.gate_hidden, 1, activation_name=c.activation)
            if c.gate else None
        )
        scales = [c.condition_scale * w for w in c.condition_weights] or c.condition_scale
        self.sinkhorn = ConditionalSinkhorn(c.sinkhorn_blur, c.sinkhorn_scaling, scales)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        # with a gate, one more normal number decides (through its CDF) empty or not
        return (self.config.noise_dim + (1 if self.gate is not None else 0),)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Log-space images (B, 44, 44) -> latent codes (B, latent_dim)."""
        if not self.config.encoder_channel_inputs:
            return self.encoder(images)
        # photon sums are exponentials of the log pixels, hard for the first layer to
        # form; given directly, the code can hold them exactly
        return self.encoder(images, log_counts(channels(counts_from_log(images))))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Latent codes -> log-space images (B, 44, 44)."""
        return self.decoder(codes)

    def sample_codes(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """The noise generator n(eps, y): (B, noise_dim) noise, (B, 9) conditions -> codes."""
        return self.noise_generator(torch.cat([noise, conditions], dim=1))

    def empty_probability(self, conditions: torch.Tensor) -> torch.Tensor | None:
        """P(empty response | y) from the gate (None without a gate)."""
        if self.gate is None:
            return None
        return torch.sigmoid(self.gate(conditions).squeeze(1))

    @property
    def response_noise_shape(self) -> tuple[int, ...]:
        return (self.config.noise_dim,)

    def kept_counts(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.decode_counts(self.sample_codes(noise, conditions))

    def decode_counts(self, codes: torch.Tensor) -> torch.Tensor:
        """Latent codes -> photon counts (B, 44, 44), directly when the decoder makes them."""
        if isinstance(self.decoder, ChannelTotalsDecoder):
            return self.decoder.counts(codes)
        return counts_from_log(self.decode(codes))

    def generate_with(
        self, noise: torch.Tensor, conditions: torch.Tensor,
        decode: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        c = self.config
        images = decode(self.sample_codes(noise[:, : c.noise_dim], conditions))
        if self.gate is not None:
            self.apply_gate(images, noise[:, c.noise_dim], conditions)
        return images

    def apply_gate(
        self, images: torch.Tensor, gate_noise: torch.Tensor, conditions: torch.Tensor
    ) -> None:
        """Empty, in place, the rows the gate draws as empty: row i is empty when the
        normal CDF of gate_noise[i] falls below P(empty | y_i)."""
        probability = self.empty_probability(conditions)
        assert probability is not None  # only called with a gate
        uniform = 0.5 * (1.0 + torch.erf(gate_noise / math.sqrt(2.0)))
        images[uniform < probability] = 0.0

    @property
    def refines(self) -> bool:
        c = self.config
        return c.refine_steps > 0 or c.shape_refit_steps > 0 or c.totals_refit_steps > 0

    def refine(
        self, batches: Iterable[Batch], generator: torch.Generator, progress: bool = False,
        *, time_is_up: Callable[[], bool] = lambda: False,
    ) -> dict[str, float] | None:
        """After the epochs, encoder frozen: refits the noise generator (``refine_steps``),
        then the decoder's light spread (``shape_refit_steps``) and its channel sums
        (``totals_refit_steps``).

        The batch-level Sinkhorn matching of training, with the conditions in its cost,
        under-disperses codes of rare conditions (the lowest energies); the energy score
        (calosim.nn.losses.energy_score, cosine learning rate, moving average of the
        weights) fits n(., y) to the codes one example per condition, so it learns the
        whole conditional law, and the AE already fixes the codes it has to learn.

        The per-pixel log-space terms leave light over once the channel sums are fixed,
        which a channel-totals decoder piles into one fibre per channel; refitting its
        pixel logits alone to the photons' likelihood (ChannelTotalsDecoder.fit_shapes)
        spreads it as the data do and leaves the sums, so the channel metrics, unchanged.

        Trained with the pixel terms and on small batches, the channel totals end a few
        per cent off the data, by a different amount in each run, and the channel W1 of
        the large common-PMT sums magnifies that: 1.2x to 2x the noise floor between runs
        of one recipe. Refitted alone (ChannelTotalsDecoder.fit_totals) on all training
        codes, by the training's own channel error, they settle at its optimum.
        """
        c = self.config
        if not self.refines:
            return None
        fit = self._training_codes(batches, keep_images=SHAPE_FIT_ROWS
                                   if c.shape_refit_steps > 0 else 0,
                                   keep_sums=c.totals_refit_steps > 0)
        losses: dict[str, float] = {}
        if c.refine_steps > 0:
            losses["loss"] = self._refit_noise_generator(fit.codes, fit.conditions, generator,
                                                         progress, time_is_up)
        if fit.images is not None:
            losses["shape"] = self.decoder.fit_shapes(
                fit.codes[: len(fit.images)], counts_from_log(fit.images),
                steps=c.shape_refit_steps, batch_size=c.refine_batch_size,
                learning_rate=c.refine_learning_rate, generator=generator, time_is_up=time_is_up,
            )
        if fit.sums is not None:
            losses["totals"] = self.decoder.fit_totals(
                fit.codes[:TOTALS_FIT_ROWS], fit.sums[:TOTALS_FIT_ROWS],
                steps=c.totals_refit_steps, learning_rate=c.refine_learning_rate,
                kind=c.channel_loss, scale=c.channel_scale, time_is_up=time_is_up,
            )
        losses.setdefault("loss", losses.get("shape", losses.get("totals", 0.0)))
        return losses

    def _refit_noise_generator(
        self, codes: torch.Tensor, conditions: torch.Tensor, generator: torch.Generator,
        progress: bool, time_is_up: Callable[[], bool],
    ) -> float:
        c = self.config
        optimiser = torch.optim.Adam(self.noise_generator.parameters(), lr=c.refine_learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, c.refine_steps)
        average = AveragedModel(
            self.noise_generator, multi_avg_fn=get_ema_multi_avg_fn(c.refine_ema_decay)
        )
        self.noise_generator.train()
        # the loss reported: the mean over the last tenth of the steps, which the average sees
        last = max(c.refine_steps // 10, 1)
        reported = 0.0
        loss = torch.zeros(())
        for step in tqdm(range(c.refine_steps), desc="refine", disable=not progress, leave=False):
            if time_is_up():
                reported = float(loss.detach())  # the last step's: no tail was reached
                break
            rows = torch.randint(len(codes), (c.refine_batch_size,), generator=generator)
            noise = torch.randn(c.refine_draws * len(rows), c.noise_dim, generator=generator)
            draws = self.sample_codes(noise.to(codes.device),
                                      conditions[rows].repeat(c.refine_draws, 1))
            loss = energy_score(draws.reshape(c.refine_draws, len(rows), -1), codes[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            average.update_parameters(self.noise_generator)
            if step >= c.refine_steps - last:
                reported += float(loss.detach()) / last
        self.noise_generator.load_state_dict(average.module.state_dict())
        return reported

    @torch.no_grad()
    def _training_codes(
        self, batches: Iterable[Batch], keep_images: int = 0, keep_sums: bool = False
    ) -> RefitData:
        """Codes and conditions of the non-empty training responses, the first
        ``keep_images`` of those responses (log space) and, with ``keep_sums``, all their
        sums over the decoder's channels, in the same order."""
        codes, conditions, images, sums = [], [], [], []
        kept = 0
        was_training = self.encoder.training
        self.encoder.eval()  # frozen: batch-norm statistics must not move either
        for batch in batches:
            # empty responses are the gate's; the AE never learnt codes for them
            keep = batch.images.flatten(1).amax(dim=1) > 0
            codes.append(self.encode(batch.images[keep]))
            conditions.append(batch.conditions[keep])
            if kept < keep_images:
                images.append(batch.images[keep][: keep_images - kept])
                kept += len(images[-1])
            if keep_sums:
                sums.append(self.decoder.channel_sums(counts_from_log(batch.images[keep])))
        self.encoder.train(was_training)
        if sum(len(chunk) for chunk in codes) < 1:
            raise CalosimError("refinement needs non-empty training responses")
        return RefitData(torch.cat(codes), torch.cat(conditions),
                         torch.cat(images) if images else None,
                         torch.cat(sums) if sums else None)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        images, conditions = batch.images, batch.conditions
        losses: dict[str, torch.Tensor] = {}
        total = images.new_zeros(())
        if self.gate is not None:
            empty = images.flatten(1).amax(dim=1) <= 0
            logits = self.gate(conditions).squeeze(1)
            losses["gate"] = F.binary_cross_entropy_with_logits(logits, empty.to(logits.dtype))
            total = total + losses["gate"]
            images, conditions = images[~empty], conditions[~empty]
        if images.shape[0] >= 2:
            codes = self.encode(images)
            if not bool(torch.isfinite(codes).all()):
                # the Sinkhorn solver cannot even size its schedule on such codes
                raise CalosimError("training diverged: the encoder's codes are not finite; "
                                   "lower training.learning_rate or set training.grad_clip")
            if c.shape_loss == "photon_likelihood":
                counts = counts_from_log(images)
                log_shares, totals = self.decoder.shares_and_totals(codes)
                losses["shape"] = channel_shape_divergence(counts, log_shares, self.decoder.mask)
                losses["channels"] = channel_sum_error(channels(counts), totals,
                                                       c.channel_loss, c.channel_scale)
                reconstruction_loss = losses["shape"] + c.channel_weight * losses["channels"]
            else:
                reconstruction = self.decode(codes)
                losses["mse"] = F.mse_loss(reconstruction, images)
                losses["laplacian"] = laplacian_pyramid_l1(images, reconstruction,
                                                           c.laplacian_levels)
                # only ZN responses have channel sums; other images leave the term out
                losses["channels"] = channel_error(
                    images, reconstruction, c.channel_loss, c.channel_scale
                ) if c.is_zn else images.new_zeros(())
                reconstruction_loss = (losses["mse"] + c.laplacian_weight * losses["laplacian"]
                                       + c.channel_weight * losses["channels"])
            generated_codes = self.sample_codes(batch.randn(images.shape[0], c.noise_dim),
                                                conditions)
            losses["sinkhorn"] = self.sinkhorn(codes, generated_codes, conditions)
            losses["diversity"] = latent_diversity(codes, c.diversity_threshold)
            losses["encoder_l2"] = self.encoder.last_linear.weight.square().sum()
            total = total + (
                c.reconstruction_weight * reconstruction_loss
                + c.sinkhorn_weight * losses["sinkhorn"]
                + c.diversity_weight * losses["diversity"]
                + c.encoder_l2 * losses["encoder_l2"]
            )
        losses["loss"] = total
        return losses
