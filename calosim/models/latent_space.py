"""What the latent generative models share: a frozen autoencoder, its standardised codes
(and the responses' channel sums), and a residual MLP conditioned on the particle.

As in latent generative memory (train the generative model on an autoencoder's codes),
the encoder and decoder of a trained model (the e2e Sinkhorn autoencoder, or any model
file whose model has ``encode`` and ``decode``) are frozen, and a small network learns the
standardised codes of the training responses, conditioned on the particle. Generation
works in the low-dimensional latent space and decodes once, which keeps it cheap enough
for CPU production.

Model files: ``model.autoencoder`` names the autoencoder's model file. When the config
is read, that file's model name and config are copied into ``model.autoencoder_config``
and its weights are loaded into this model, where they are saved with the rest; a latent
model file therefore never needs the autoencoder file again. (A config that already holds
``autoencoder_config``, like a run's config.yaml, carries no weights: training from it is
refused; remove the key to read the file again.) With ``use_gate`` and an autoencoder that
has an empty-response gate (the e2e SAE's), that gate decides which particles give an
empty response, as in the autoencoder's own generation, and the latent model learns the
codes of the non-empty responses only: the encoder never saw an empty one.

With ``diffuse_totals`` the latent vector is the code followed by log(1 + S_c) of the
response's 5 channel sums, and the decoded response is rescaled, channel by channel, to
the generated sums. The sums are the 5 signals a ZN reads out and what its metrics
compare; an autoencoder's reconstructions regress towards the mean (the e2e SAE's lowest
quarter of common-PMT sums came back ~30 photons high, its top tenth ~75 low), so a latent
model that only decodes codes cannot be closer to the Monte Carlo than its autoencoder.
With the sums generated, the decoder gives only how the light spreads within each channel,
as in fast calorimeter simulations that generate per-layer energies and shapes separately
(CaloFlow). The autoencoder is rebuilt from its stored config by the current code of its
model, so, as for that model's own files, its code must keep reading old configs the old
way.

Latents are standardised with the mean and standard deviation of the first training
batch (buffers, saved in the model file), so the network sees unit-scale data.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from calosim.data.schema import N_ATTRIBUTES, RESPONSE_SHAPE
from calosim.data.transforms import counts_from_log, log_counts
from calosim.errors import CalosimError, ModelFileError
from calosim.metrics.zdc import N_CHANNELS, channels, with_channel_sums
from calosim.models.base import Batch, DecodedGeneration, GenerativeModel, ModelConfig
from calosim.models.registry import build_model
from calosim.nn.embeddings import ConditionEmbedding, TimeEmbedding
from calosim.nn.mlp import activation

Activation = Literal["relu", "leaky_relu", "elu", "silu", "tanh"]  # calosim.nn.mlp.ACTIVATIONS


def read_autoencoder_file(path: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """({"model_name", "config"}, weights) of the model stored in a calosim model file."""
    from calosim.training.checkpoint import MODEL_FORMAT, read_calosim_file

    payload = read_calosim_file(Path(path), MODEL_FORMAT, "cpu")
    try:
        spec = {"model_name": str(payload["model_name"]), "config": dict(payload["config"])}
        weights = dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: corrupt model file (no model name, config or weights)"
                             ) from None
    return spec, weights


@dataclass
class LatentSpaceConfig(ModelConfig):
    """The autoencoder and the latent network's size (see the module docstring)."""

    autoencoder: str | None = None
    autoencoder_config: Any = None
    width: int = 128
    depth: int = 3
    embedding_dim: int = 64
    activation: Activation = "relu"
    use_gate: bool = True
    diffuse_totals: bool = True

    def __post_init__(self) -> None:
        if self.width < 1 or self.depth < 1 or self.embedding_dim < 2:
            raise ValueError("width and depth must be positive and embedding_dim at least 2")
        if self.autoencoder_config is None:
            if self.autoencoder is None:
                raise ValueError("a latent model needs model.autoencoder: the model file of a "
                                 "trained autoencoder (e.g. runs/e2e_sae/model.pt)")
            spec, weights = read_autoencoder_file(self.autoencoder)
            self.autoencoder_config = spec
            # not a dataclass field: the weights go to the model, never into a config file
            self.loaded_weights = weights
        elif not (isinstance(self.autoencoder_config, dict)
                  and isinstance(self.autoencoder_config.get("model_name"), str)
                  and isinstance(self.autoencoder_config.get("config"), dict)):
            raise ValueError("autoencoder_config must be a mapping with model_name and config")
        # cooperative: a config that also derives from DiffusionConfig keeps its checks
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()


class ResidualMLPDenoiser(nn.Module):
    """(z_t, embedding) -> output: an input layer and residual blocks, each adding a linear
    projection of the embedding, then a zero-initialised output layer.

    The embedding enters only through those projections, which are linear: a sampler
    computes the particle's part once per run and the step's part once per step (for one
    row), instead of projecting a full (B, dim) embedding at every step.
    """

    def __init__(
        self, data_dim: int, emb_dim: int, width: int, depth: int, activation_name: str = "relu"
    ) -> None:
        super().__init__()
        self.input = nn.Linear(data_dim, width)
        self.embedding_projections = nn.ModuleList(
            nn.Linear(emb_dim, width) for _ in range(depth + 1)
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(activation(activation_name), nn.Linear(width, width),
                          activation(activation_name), nn.Linear(width, width))
            for _ in range(depth)
        )
        self.output = nn.Sequential(activation(activation_name), nn.Linear(width, data_dim))
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    def embedding_terms(self, emb: torch.Tensor, bias: bool = True) -> list[torch.Tensor]:
        """The projections of an embedding for the input layer and each block."""
        return [F.linear(emb, p.weight, p.bias if bias else None)
                for p in self.embedding_projections]

    def forward(
        self, z: torch.Tensor, emb: torch.Tensor | None = None,
        terms: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Denoiser output from the embedding, or from its precomputed ``terms``."""
        if terms is None:
            if emb is None:
                raise ValueError("the denoiser needs an embedding or its terms")
            terms = self.embedding_terms(emb)
        h = self.input(z) + terms[0]
        for term, block in zip(terms[1:], self.blocks, strict=True):
            h = h + block(h + term)
        return self.output(h)


class LatentSpaceModel(DecodedGeneration, GenerativeModel):
    """A conditional generative model of frozen autoencoder latents, decoded to responses.

    Subclasses add the generative part: ``training_losses`` (from ``training_latents``)
    and ``sample_latents`` (standard normal noise -> standardised latents)."""

    config: LatentSpaceConfig

    def __init__(self, config: LatentSpaceConfig) -> None:
        super().__init__(config)
        spec = config.autoencoder_config
        try:
            self.autoencoder = build_model(spec["model_name"], spec["config"])
        except CalosimError as error:
            raise ModelFileError(f"{config.autoencoder}: {error}") from None
        if not (hasattr(self.autoencoder, "encode") and hasattr(self.autoencoder, "decode")):
            raise ModelFileError(f"{config.autoencoder}: model {spec['model_name']!r} has no "
                                 "encoder and decoder to generate in")
        weights = getattr(config, "loaded_weights", None)
        if weights is not None:
            try:
                self.autoencoder.load_state_dict(weights)
            except RuntimeError as error:
                first_line = str(error).strip().splitlines()[0]
                raise ModelFileError(f"{config.autoencoder}: weights do not fit its model "
                                     f"({first_line})") from None
        self.autoencoder.requires_grad_(False)
        self.autoencoder.eval()
        with torch.no_grad():
            self.latent_dim = int(self.autoencoder.encode(torch.zeros(2, *RESPONSE_SHAPE)).shape[1])
        self.gated = (config.use_gate and hasattr(self.autoencoder, "apply_gate")
                      and getattr(self.autoencoder, "gate", None) is not None)
        # the generated vector: the code, then (with diffuse_totals) the log channel sums
        self.data_dim = self.latent_dim + (N_CHANNELS if config.diffuse_totals else 0)
        self.register_buffer("autoencoder_loaded", torch.tensor(weights is not None))
        self.register_buffer("latent_stats_fitted", torch.tensor(False))
        self.register_buffer("latent_mean", torch.zeros(self.data_dim))
        self.register_buffer("latent_std", torch.ones(self.data_dim))
        self.time_embedding = TimeEmbedding(config.embedding_dim)
        self.condition_embedding = ConditionEmbedding(N_ATTRIBUTES, config.embedding_dim)
        self.denoiser = ResidualMLPDenoiser(self.data_dim, config.embedding_dim, config.width,
                                            config.depth, config.activation)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        # with the gate, one more normal number decides (through its CDF) empty or not
        return (self.data_dim + (1 if self.gated else 0),)

    @property
    def response_noise_shape(self) -> tuple[int, ...]:
        return (self.data_dim,)

    def empty_probability(self, conditions: torch.Tensor) -> torch.Tensor | None:
        return self.autoencoder.empty_probability(conditions) if self.gated else None

    def kept_counts(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.decode_counts(self.sample_latents(noise, conditions))

    def train(self, mode: bool = True) -> LatentSpaceModel:
        """Train mode for the latent network only: the frozen autoencoder stays in eval."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    def configure_optimisers(
        self, learning_rate: float, weight_decay: float
    ) -> list[torch.optim.Optimizer]:
        trainable = [p for p in self.parameters() if p.requires_grad]
        return [torch.optim.Adam(trainable, lr=learning_rate, weight_decay=weight_decay)]

    # ---------------------------------------------------------------------- latents

    def latents_of(self, images: torch.Tensor) -> torch.Tensor:
        """Log-space images -> the unstandardised latent vectors: the codes, then, with
        diffuse_totals, log(1 + channel sums)."""
        with torch.no_grad():
            codes = self.autoencoder.encode(images)
            if not self.config.diffuse_totals:
                return codes
            return torch.cat([codes, log_counts(channels(counts_from_log(images)))], dim=1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Log-space images -> standardised latents (no gradient into the autoencoder)."""
        return (self.latents_of(images) - self.latent_mean) / self.latent_std

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents -> log-space images."""
        if self.config.diffuse_totals:
            return self.decode_counts(latents).log1p()
        return self.autoencoder.decode(latents * self.latent_std + self.latent_mean)

    def decode_counts(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents -> photon counts, through the autoencoder's own counts path
        when it has one; with diffuse_totals, rescaled to the latents' channel sums."""
        values = latents * self.latent_std + self.latent_mean
        codes = values[:, : self.latent_dim]
        if hasattr(self.autoencoder, "decode_counts"):
            counts = self.autoencoder.decode_counts(codes)
        else:
            counts = counts_from_log(self.autoencoder.decode(codes))
        if not self.config.diffuse_totals:
            return counts
        return with_channel_sums(counts, counts_from_log(values[:, self.latent_dim :]).clamp(min=0))

    def fit_latent_statistics(self, images: torch.Tensor) -> None:
        """Mean and standard deviation of the latents of ``images``, per dimension."""
        codes = self.latents_of(images)
        self.latent_mean.copy_(codes.mean(dim=0))
        self.latent_std.copy_(codes.std(dim=0).clamp(min=1e-6))
        self.latent_stats_fitted.fill_(True)

    def training_latents(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(standardised latents, conditions) of the batch rows the model learns (the
        non-empty ones with a gate); None when there are none."""
        if not bool(self.autoencoder_loaded):
            raise CalosimError(
                "latent model: model.autoencoder_config is set but no autoencoder weights "
                "were loaded; remove autoencoder_config so they are read from model.autoencoder"
            )
        images, conditions = batch.images, batch.conditions
        if self.gated:
            keep = images.flatten(1).amax(dim=1) > 0
            images, conditions = images[keep], conditions[keep]
            if images.shape[0] == 0:
                return None
        if not bool(self.latent_stats_fitted):
            self.fit_latent_statistics(images)
        return self.encode(images), conditions

    # ------------------------------------------------------------------- generation

    @abstractmethod
    def sample_latents(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(B, data_dim) standard normal noise -> (B, data_dim) standardised latents."""

    def generate_with(
        self, noise: torch.Tensor, conditions: torch.Tensor,
        decode: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        images = decode(self.sample_latents(noise[:, : self.data_dim], conditions))
        if self.gated:
            self.autoencoder.apply_gate(images, noise[:, self.data_dim], conditions)
        return images
