"""The surface every learned generative model shares.

A model is a ``GenerativeModel`` (an nn.Module with a dataclass config) that learns in
log(1 + counts) space from standardised particle attributes. ``LearnedSimulator`` turns
any such model, with its transforms, into a DetectorSimulator: the trainer, the model
files and `calosim.load` only ever talk to these two classes, so a new model (VAE, GAN,
diffusion) plugs in by subclassing GenerativeModel and registering it (see registry).
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from calosim.data.schema import N_ATTRIBUTES, RESPONSE_SHAPE
from calosim.data.transforms import counts_from_log
from calosim.errors import CalosimError
from calosim.simulators.base import RANDOM_BLOCK, DetectorSimulator, ParticleRowError

LOG_TRANSFORMS = ("log1p",)
# "nearest": round half to even, deterministic; "stochastic": floor(x + u), u ~ U(0, 1),
# integer counts whose expectation is the model's (unbiased channel sums)
ROUNDINGS = ("nearest", "stochastic")
# The most photons a pixel of a data file holds (uint32): more is a broken model.
MAX_PIXEL_COUNT = 2**32 - 1


# ---------------------------------------------------------------------------- configs


@dataclass
class ModelConfig:
    """Base of every model's hyper-parameter dataclass (fields with defaults only).

    Subclasses check value ranges in ``__post_init__`` and raise ValueError; the
    config reader turns that into a one-line CalosimError naming the key.

    ``file_defaults``: for keys added after model files were first written, the value
    that reproduces the older behaviour; a model file whose config lacks such a key is
    read with it (new configs get the field's default).
    """

    file_defaults: ClassVar[dict[str, Any]] = {}


@dataclass
class DataShapeConfig(ModelConfig):
    """A model config that also names the data it is built for: ``image_shape`` (H, W) and
    ``condition_dim``, the width of a condition vector (0: unconditional). The defaults are
    the ZN ones, so ZN configs and model files written before these keys existed read
    unchanged; the image benchmarks set them (calosim.images)."""

    image_shape: tuple[int, ...] = RESPONSE_SHAPE
    condition_dim: int = N_ATTRIBUTES

    def __post_init__(self) -> None:
        if len(self.image_shape) != 2 or min(self.image_shape) < 4:
            raise ValueError(f"image_shape must be 2 sides of at least 4, got "
                             f"{list(self.image_shape)}")
        if self.condition_dim < 0:
            raise ValueError(f"condition_dim must not be negative, got {self.condition_dim}")
        # cooperative: a config that also derives from another base (DiffusionConfig)
        # keeps that base's checks
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()

    @property
    def is_zn(self) -> bool:
        """Whether images are ZN responses, whose channel sums some losses read."""
        return tuple(self.image_shape) == RESPONSE_SHAPE

    def require_zn(self, **settings: Any) -> None:
        """ValueError naming the first of ``settings`` that is on (non-zero, true) although
        the images are not ZN responses: the ZN channel sums it reads do not exist there."""
        if self.is_zn:
            return
        for name, value in settings.items():
            if value:
                raise ValueError(f"{name} reads ZN channel sums, which images of shape "
                                 f"{list(self.image_shape)} lack; set it to 0 or false")


def config_from_dict(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """Build dataclass ``cls`` from a plain mapping, checking keys and value types.

    ``where`` names the config section in messages ("model", "training"). Unknown
    keys, values of the wrong type and values rejected by ``__post_init__`` raise a
    one-line CalosimError.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise CalosimError(
            f"config: unknown key {where}.{unknown[0]} (known: {', '.join(sorted(fields))})"
        )
    checked = {key: _coerce(value, hints[key], f"{where}.{key}") for key, value in values.items()}
    try:
        return cls(**checked)
    except (TypeError, ValueError) as error:
        raise CalosimError(f"config: {where}: {error}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON-friendly values (tuples become lists)."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# A value in an error message is cut short: a config value may be arbitrarily large.
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 2, 60, 60
_SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxdict = 4


def short_repr(value: Any) -> str:
    """repr of ``value``, cut short, for error messages."""
    return _SHORT_REPR.repr(value)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against type ``hint`` (plain types, unions, tuples, Literal)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except CalosimError as error:
                errors.append(str(error))
        raise CalosimError(errors[0] if len(errors) == 1
                           else f"config: {key}: bad value {short_repr(value)}")
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise CalosimError(f"config: {key}: expected one of {allowed}, got {short_repr(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise CalosimError(f"config: {key}: expected a list, got {short_repr(value)}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise CalosimError(f"config: {key}: expected true or false, got {short_repr(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CalosimError(f"config: {key}: expected an integer, got {short_repr(value)}")
        return value
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads 1e-4 (no dot) as a string: accept what Python reads as a number
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalosimError(f"config: {key}: expected a number, got {short_repr(value)}")
        if not math.isfinite(value):
            raise CalosimError(f"config: {key}: expected a finite number, got {value}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise CalosimError(f"config: {key}: expected a string, got {short_repr(value)}")
        return value
    raise CalosimError(f"config: {key}: unsupported config type {hint}")


# ----------------------------------------------------------------------------- models


@dataclass
class Batch:
    """One training batch: log(1 + counts) images (B, 44, 44) and standardised
    conditions (B, 9) on the model's device, plus the CPU generator all training noise
    is drawn from (so a resumed run draws the same noise)."""

    images: torch.Tensor
    conditions: torch.Tensor
    generator: torch.Generator

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal noise of ``shape``, drawn on the CPU, on the batch's device."""
        noise = torch.randn(*shape, generator=self.generator)
        return noise.to(device=self.images.device, dtype=self.images.dtype)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) noise of ``shape``, drawn on the CPU, on the batch's device."""
        noise = torch.rand(*shape, generator=self.generator)
        return noise.to(device=self.images.device, dtype=self.images.dtype)


class GenerativeModel(nn.Module, ABC):
    """A conditional generator of ZN responses in log(1 + counts) space.

    Subclasses set ``config_class``, take an instance of it in ``__init__`` and
    implement ``noise_shape``, ``training_losses`` and ``generate``. Models with several
    optimisers (GANs) override ``configure_optimisers`` and ``training_step``.
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # Why generation cannot be one feed-forward ONNX graph (None: it can be).
    onnx_refusal: ClassVar[str | None] = None

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    @property
    @abstractmethod
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of the standard-normal noise ``generate`` takes per response."""

    @abstractmethod
    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Differentiable losses of one batch; "loss" is the one to minimise, the others
        are its parts, logged as they are."""

    @abstractmethod
    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(B, *noise_shape) standard normal noise and (B, 9) standardised conditions ->
        (B, 44, 44) images in log(1 + counts) space. Deterministic given its inputs."""

    def generate_counts(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """``generate`` as photon counts (exp(x) - 1, clamped at 0): what a simulator
        returns. Models whose decoder makes counts directly override it to skip the log."""
        return counts_from_log(self.generate(noise, conditions))

    def empty_probability(self, conditions: torch.Tensor) -> torch.Tensor | None:
        """P(empty response | y), (B,), of a model whose gate decides emptiness apart from
        the response itself; None for a model without such a gate."""
        return None

    @property
    def response_noise_shape(self) -> tuple[int, ...]:
        """The part of ``noise_shape`` that ``kept_counts`` takes: all of it without a gate."""
        return self.noise_shape

    def kept_counts(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Photon counts of the response drawn when the gate keeps it (noise of
        ``response_noise_shape``); ``generate_counts`` without a gate."""
        return self.generate_counts(noise, conditions)

    @property
    def refines(self) -> bool:
        """Whether ``refine`` has work to do after the epochs."""
        return False

    def refine(
        self, batches: Iterable[Batch], generator: torch.Generator, progress: bool = False,
        *, time_is_up: Callable[[], bool] = lambda: False,
    ) -> dict[str, float] | None:
        """An optional last training phase, run by the Trainer on the best model once the
        epochs are over: ``batches`` go once over the training set, in order; noise is
        drawn from ``generator``; its step loops stop early once ``time_is_up()`` (the
        run's time budget). Returns its final losses ("loss": the one it minimised), or
        None when there is none."""
        return None

    def configure_optimisers(
        self, learning_rate: float, weight_decay: float
    ) -> list[torch.optim.Optimizer]:
        """The optimisers ``training_step`` uses; one Adam over all parameters here."""
        return [torch.optim.Adam(self.parameters(), lr=learning_rate, weight_decay=weight_decay)]

    def training_step(
        self,
        batch: Batch,
        optimisers: Sequence[torch.optim.Optimizer],
        grad_clip: float | None = None,
        penalty: Callable[[], Mapping[str, torch.Tensor]] | None = None,
    ) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the losses as floats. ``penalty``
        gives weighted terms added to the loss (a continual strategy's, by name)."""
        (optimiser,) = optimisers
        optimiser.zero_grad(set_to_none=True)
        losses = with_penalty(self.training_losses(batch), penalty)
        losses["loss"].backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), grad_clip)
        optimiser.step()
        return {name: float(value.detach()) for name, value in losses.items()}


def with_penalty(
    losses: dict[str, torch.Tensor], penalty: Callable[[], Mapping[str, torch.Tensor]] | None
) -> dict[str, torch.Tensor]:
    """``losses`` with the terms of ``penalty`` logged by name and added to "loss"."""
    if penalty is None:
        return losses
    for name, term in penalty().items():
        losses[name] = term
        losses["loss"] = losses["loss"] + term
    return losses


# -------------------------------------------------------------------------- simulator


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device from a user string, with a one-line error for unusable ones."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise CalosimError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CalosimError(f"device {device!r} requested but CUDA is not available here")
    return resolved


class DecodedGeneration(ABC):
    """Mixin for models that generate through a decoder which can also give photon counts
    directly (``decode`` and ``decode_counts``): both generation paths run the same
    ``generate_with(noise, conditions, decode)``. List it before GenerativeModel."""

    decode: Callable[[torch.Tensor], torch.Tensor]  # codes -> log(1 + counts) images
    decode_counts: Callable[[torch.Tensor], torch.Tensor]  # codes -> counts

    @abstractmethod
    def generate_with(
        self, noise: torch.Tensor, conditions: torch.Tensor,
        decode: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Responses from noise and conditions, with ``decode`` as the last step."""

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.generate_with(noise, conditions, self.decode)

    def generate_counts(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.generate_with(noise, conditions, self.decode_counts)


class LearnedSimulator(DetectorSimulator):
    """A trained GenerativeModel behind the DetectorSimulator interface.

    Each block of RANDOM_BLOCK particles draws its noise from its own numpy generator
    and goes through the model as one batch, so a response depends only on the seed,
    the particle and its position: chunked generation equals one-shot generation.
    ``round_counts`` gives integer photon counts, by ``rounding`` (see ROUNDINGS).
    """

    def __init__(
        self,
        model: GenerativeModel,
        standardiser: Any,
        *,
        model_name: str,
        log_transform: str = "log1p",
        device: str | torch.device = "cpu",
        round_counts: bool = True,
        rounding: str = "nearest",
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if rounding not in ROUNDINGS:
            raise CalosimError(f"unknown rounding {rounding!r} (known: {', '.join(ROUNDINGS)})")
        if log_transform not in LOG_TRANSFORMS:
            raise CalosimError(
                f"unknown log transform {log_transform!r} (known: {', '.join(LOG_TRANSFORMS)})"
            )
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.standardiser = standardiser
        self.name = model_name
        self.log_transform = log_transform
        self.round_counts = round_counts
        self.rounding = rounding
        self.info = dict(info or {})

    def _simulate(
        self, particles: np.ndarray, generators: Sequence[np.random.Generator]
    ) -> np.ndarray:
        # attributes far outside the training data (allow_out_of_range) may overflow
        # float32 once standardised: refused below, without a RuntimeWarning first
        with np.errstate(over="ignore", invalid="ignore"):
            conditions = np.asarray(self.standardiser.transform(particles), dtype=np.float32)
        unusable = ~np.isfinite(conditions).all(axis=1)
        if unusable.any():
            raise ParticleRowError(int(unusable.argmax()), f"{self._label()}: the attributes "
                                   "overflow float32 once standardised")
        noise_shape = tuple(self.model.noise_shape)
        responses = np.empty((len(particles), *RESPONSE_SHAPE), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for block, generator in enumerate(generators):
                    rows = slice(block * RANDOM_BLOCK, (block + 1) * RANDOM_BLOCK)
                    n_rows = len(conditions[rows])
                    noise = generator.standard_normal((n_rows, *noise_shape), dtype=np.float32)
                    counts = self.model.generate_counts(
                        torch.from_numpy(noise).to(self.device),
                        torch.from_numpy(conditions[rows]).to(self.device),
                    ).float().cpu().numpy()
                    # two reductions on the fast path; NaN fails both comparisons
                    if not -MAX_PIXEL_COUNT <= counts.min() <= counts.max() <= MAX_PIXEL_COUNT:
                        bad = ~(np.abs(counts) <= MAX_PIXEL_COUNT).reshape(n_rows, -1).all(1)
                        raise ParticleRowError(
                            block * RANDOM_BLOCK + int(bad.argmax()),
                            f"{self._label()} gives NaN, infinite or more than "
                            f"{MAX_PIXEL_COUNT} photons in a pixel")
                    out = responses[rows]  # a view: results are written in place
                    if self.round_counts and self.rounding == "stochastic":
                        # drawn after the model's noise, from the same block generator
                        jitter = generator.random(counts.shape, dtype=np.float32)
                        np.floor(np.add(counts, jitter, out=out), out=out)
                    elif self.round_counts:
                        np.round(counts, out=out)
                    else:
                        out[...] = counts
        finally:
            self.model.train(was_training)
        return responses

    def _label(self) -> str:
        model_file = self.info.get("model_file")
        return f"model {self.name}" + (f" ({model_file})" if model_file else "")

    def describe(self) -> dict[str, Any]:
        """Model name, device, output rounding and the model file's provenance."""
        return {
            "simulator": self.name,
            "device": str(self.device),
            "round_counts": self.round_counts,
            "rounding": self.rounding,
            "noise_shape": list(self.model.noise_shape),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            **self.info,
        }
