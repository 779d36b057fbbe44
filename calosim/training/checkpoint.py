"""Model files and resume checkpoints: plain tensors and Python values only.

Both are written atomically (temporary file in the same directory, then os.replace) and
read with ``torch.load(weights_only=True)``, which cannot run code hidden in a file, so
a foreign pickle is refused rather than executed. Every file carries a sha256 of its
contents (tensors and settings), its config's sha256 and the calosim version that wrote
it; a file changed since (a flipped byte in its weights) is refused. Anything that is not
a readable, intact calosim file raises ModelFileError with one line naming the file.
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
IMAGE_MODEL_FORMAT = "calosim-image-model"
FORMAT_VERSION = 1
_MODEL_KEYS = ("model_name", "config", "state_dict", "transforms")


def data_fingerprint(particles: np.ndarray) -> str:
    """sha256 over the shape and float32 bytes of a particle table: which data trained a model."""
    table = np.ascontiguousarray(particles, dtype=np.float32)
    digest = hashlib.sha256(repr(table.shape).encode())
    digest.update(table.tobytes())
    return digest.hexdigest()


def payload_checksum(payload: Mapping[str, Any]) -> str:
    """sha256 over every value of a calosim torch file but its ``integrity`` entry:
    tensors by dtype, shape and bytes, everything else by type and repr, keys sorted."""
    return _sha256({k: v for k, v in payload.items() if k != "integrity"})


def _sha256(value: Any) -> str:
    digest = hashlib.sha256()
    _digest(value, digest)
    return digest.hexdigest()


def _digest(value: Any, digest: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        digest.update(f"array {array.dtype.str} {array.shape}:".encode())
        digest.update(array.tobytes())
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key in sorted(value, key=str):
            _digest(key, digest)
            _digest(value[key], digest)
        digest.update(b"}")
    elif isinstance(value, list | tuple):
        digest.update(b"[")
        for item in value:
            _digest(item, digest)
        digest.update(b"]")
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def atomic_torch_save(payload: Mapping[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file beside ``path``, then rename it into place; the file
    carries the checksum `read_calosim_file` verifies."""
    payload = dict(payload)
    payload["integrity"] = {
        "sha256": payload_checksum(payload),
        "config_sha256": _sha256(payload["config"]) if "config" in payload else None,
        "calosim_version": __version__,
    }
    # saved through a stream: torch names the archive inside after a path it is given
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        torch.save(payload, stream)
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
    integrity = payload.get("integrity")
    if integrity is not None and (not isinstance(integrity, Mapping)
                                  or integrity.get("sha256") != payload_checksum(payload)):
        raise ModelFileError(
            f"{path}: damaged {_kind(expected_format)}: its contents no longer match the "
            "checksum written with them"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: {_kind(expected_format)} format version {version!r} is newer than this "
            f"calosim ({__version__}) reads; upgrade calosim"
        )
    return payload


def _kind(file_format: str) -> str:
    kinds = {MODEL_FORMAT: "model file", TRAINING_STATE_FORMAT: "training checkpoint"}
    return kinds.get(file_format, "image model file")


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


def describe_calosim_file(path: str | Path) -> dict[str, Any]:
    """What a calosim torch file (model, image model, training checkpoint) holds, with its
    provenance and integrity, without building the model."""
    path = Path(path)
    payload = None
    for file_format in (MODEL_FORMAT, TRAINING_STATE_FORMAT, IMAGE_MODEL_FORMAT):
        try:
            payload = read_calosim_file(path, file_format)
            break
        except ModelFileError as error:
            if "it is a 'calosim-" not in str(error):
                raise
    if payload is None:
        raise ModelFileError(f"{path}: a calosim file of a kind this calosim does not know")
    weights = payload.get("state_dict", payload.get("model"))
    integrity = payload.get("integrity")
    description: dict[str, Any] = {
        "kind": {MODEL_FORMAT: "model", TRAINING_STATE_FORMAT: "training checkpoint"}.get(
            str(payload["format"]), "image model"),
        "format_version": payload.get("format_version"),
        "model_name": payload.get("model_name"),
        "parameters": sum(t.numel() for t in weights.values() if isinstance(t, torch.Tensor))
        if isinstance(weights, Mapping) else None,
        "calosim_version": payload.get("calosim_version"),
        "seed": payload.get("seed"),
        "data_fingerprint": payload.get("data_fingerprint"),
        "integrity": {"checksum": "verified", **integrity} if isinstance(integrity, Mapping)
        else {"checksum": "none (the file carries no checksum)"},
    }
    for key in ("benchmark", "n_classes", "conditional", "epoch", "next_batch", "best_epoch",
                "world_size"):
        if key in payload:
            description[key] = payload[key]
    return {key: value for key, value in description.items() if value is not None}
