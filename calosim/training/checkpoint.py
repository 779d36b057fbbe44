"""Model files and resume checkpoints: plain tensors and Python values only.

Both are written atomically (temporary file in the same directory, then os.replace) and
read with ``torch.load(weights_only=True)``, which cannot run code hidden in a file, so
a foreign pickle is refused rather than executed. Anything that is not a readable
calosim file raises ModelFileError with one line naming the file.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calosim._version import __version__
from calosim.data.formats.atomic import atomic_output
from calosim.errors import CalosimError, ModelFileError
from calosim.models.base import LearnedSimulator, config_to_dict, resolve_device
from calosim.models.registry import build_model, model_classes

MODEL_FORMAT = "calosim-model"
TRAINING_STATE_FORMAT = "calosim-training-state"
FORMAT_VERSION = 1
_MODEL_KEYS = ("model_name", "config", "state_dict", "transforms")


def data_fingerprint(particles: np.ndarray) -> str:
    """sha256 over the shape and float32 bytes of a particle table: which data trained a model."""
    table = np.ascontiguousarray(particles, dtype=np.float32)
    digest = hashlib.sha256(repr(table.shape).encode())
    digest.update(table.tobytes())
    return digest.hexdigest()


def atomic_torch_save(payload: Mapping[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file beside ``path``, then rename it into place."""
    with atomic_output(path) as temporary:
        torch.save(dict(payload), temporary)
    return Path(path)


def _plain(value: Any) -> Any:
    """numpy arrays and scalars inside nested containers -> Python lists and numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_model_file(
    path: str | Path,
    simulator: LearnedSimulator,
    *,
    data_fingerprint: str | None = None,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model of ``simulator`` (weights, config, transforms, provenance) to ``path``."""
    state_dict = {k: v.detach().cpu().clone() for k, v in simulator.model.state_dict().items()}
    payload = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": simulator.name,
        "config": config_to_dict(simulator.model.config),
        "state_dict": state_dict,
        "transforms": {
            "particles": _plain(simulator.standardiser.to_dict()),
            "log_transform": simulator.log_transform,
        },
        "round_counts": bool(simulator.round_counts),
        "rounding": simulator.rounding,
        "calosim_version": __version__,
        "data_fingerprint": data_fingerprint,
        "seed": seed,
        "extra": _plain(dict(extra or {})),
    }
    return atomic_torch_save(payload, path)


def read_calosim_file(
    path: str | Path, expected_format: str, device: str = "cpu"
) -> dict[str, Any]:
    """Load a calosim torch file safely; ModelFileError unless it holds ``expected_format``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            # torch warns about foreign pickles before refusing them; the error says enough
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, AttributeError, TypeError, KeyError, IndexError) as error:
        reason = type(error).__name__
        raise ModelFileError(
            f"{path}: not a calosim {_kind(expected_format)} (unreadable as a safe PyTorch file: "
            f"{reason})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else None
        detail = f"it is a {found!r} file" if isinstance(found, str) else "foreign PyTorch data"
        raise ModelFileError(f"{path}: not a calosim {_kind(expected_format)} ({detail})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: {_kind(expected_format)} format version {version!r} is newer than this "
            f"calosim ({__version__}) reads; upgrade calosim"
        )
    return payload


def _kind(file_format: str) -> str:
    return "model file" if file_format == MODEL_FORMAT else "training checkpoint"


def load_simulator(path: str | Path, device: str = "cpu") -> LearnedSimulator:
    """The LearnedSimulator stored in a model file (``model.pt``), on ``device``."""
    from calosim.data.transforms import ParticleStandardiser

    resolved = resolve_device(device)
    payload = read_calosim_file(path, MODEL_FORMAT, "cpu")
    missing = [key for key in _MODEL_KEYS if key not in payload]
    if missing:
        raise ModelFileError(f"{path}: corrupt model file (missing {', '.join(missing)})")
    name = payload["model_name"]
    try:
        config_class, _ = model_classes(name)
        config = payload["config"]
        if isinstance(config, Mapping):
            config = {**config_class.file_defaults, **config}
        model = build_model(name, config)
    except CalosimError as error:
        raise ModelFileError(f"{path}: {error}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ModelFileError(
            f"{path}: corrupt model file (weights do not fit model {name!r}: {first_line})"
        ) from None
    transforms = payload["transforms"]
    try:
        standardiser = ParticleStandardiser.from_dict(transforms["particles"])
        log_transform = transforms["log_transform"]
    except (KeyError, TypeError, ValueError, CalosimError) as error:
        raise ModelFileError(f"{path}: corrupt model file (bad transforms: {error})") from None
    info = {
        "model_file": str(path),
        "calosim_version": payload.get("calosim_version"),
        "data_fingerprint": payload.get("data_fingerprint"),
        "seed": payload.get("seed"),
    }
    try:
        return LearnedSimulator(
            model, standardiser, model_name=name, log_transform=log_transform, device=resolved,
            round_counts=bool(payload.get("round_counts", True)),
            rounding=str(payload.get("rounding", "nearest")), info=info,
        )
    except CalosimError as error:
        raise ModelFileError(f"{path}: {error}") from None


def save_training_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a resume checkpoint (model and optimiser states, counters, RNG states)."""
    return atomic_torch_save(
        {"format": TRAINING_STATE_FORMAT, "format_version": FORMAT_VERSION, **state}, path
    )


def load_training_state(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Read a resume checkpoint written by save_training_state."""
    return read_calosim_file(path, TRAINING_STATE_FORMAT, device)
