"""The LeNet-style classifier whose penultimate features serve the image metrics.

Trained in-project per dataset, deterministically (fixed seed, deterministic torch
algorithms), then cached: ``$CALOSIM_CACHE`` or ``~/.cache/calosim``, under
``classifiers/<dataset>-v<version>-<hash>.pt`` where the hash covers the training images,
labels, the training settings and CLASSIFIER_VERSION. Files are written atomically and
read with ``weights_only=True``; an unreadable or foreign cache file is retrained over.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from calosim.data.formats.atomic import atomic_output
from calosim.data.images import ImageDataset
from calosim.metrics.observables import MetricInputError

# Bump whenever the architecture or the training procedure changes: old caches then miss.
CLASSIFIER_VERSION = 1
CACHE_ENV = "CALOSIM_CACHE"
FEATURE_DIM = 128
_POOLED_SIDE = 4  # feature maps are pooled to 4 x 4 whatever the image size
_EVAL_BATCH = 1024


@dataclass(frozen=True)
class ClassifierConfig:
    """How the classifier is trained: Adam with a cosine-decayed learning rate for ``steps``
    mini-batches, but at most ``max_epochs`` passes over small datasets (the digits)."""

    steps: int = 2000
    max_epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


class LeNetClassifier(nn.Module):
    """Two convolution blocks (conv 3x3, batch norm, ReLU, max-pool) and two dense layers.

    Adaptive pooling to 4 x 4 lets the same network read 8 x 8 digits and 28 x 28 images.
    ``features`` gives the penultimate layer (FEATURE_DIM wide) used by FID and
    precision/recall.
    """

    def __init__(self, n_classes: int, image_shape: tuple[int, int]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(_POOLED_SIDE), nn.Flatten(),
            nn.Linear(32 * _POOLED_SIDE ** 2, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(FEATURE_DIM, n_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate activations of (N, 1, H, W) images."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


def cache_root() -> Path:
    """$CALOSIM_CACHE, else ~/.cache/calosim."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "calosim")


def classifier_cache_path(train: ImageDataset, config: ClassifierConfig,
                          root: str | os.PathLike[str] | None = None) -> Path:
    """Where the classifier trained on ``train`` with ``config`` is cached."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": CLASSIFIER_VERSION, "config": asdict(config),
                              "shape": train.images.shape, "classes": train.class_names},
                             sort_keys=True).encode())
    digest.update(np.ascontiguousarray(train.images).tobytes())
    digest.update(np.ascontiguousarray(train.labels).tobytes())
    directory = Path(root) if root is not None else cache_root()
    return directory / "classifiers" / (
        f"{train.name}-v{CLASSIFIER_VERSION}-{digest.hexdigest()[:16]}.pt")


@contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded torch RNG and deterministic kernels inside, the caller's settings after."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic)


def _as_batch(images: np.ndarray | torch.Tensor, name: str,
              image_shape: tuple[int, ...]) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) images as a float32 (N, 1, H, W) tensor, checked."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != tuple(image_shape) or len(array) == 0:
        raise MetricInputError(f"{name}: expected images (N, {image_shape[0]}, "
                               f"{image_shape[1]}), got shape {np.shape(images)}")
    if not np.isfinite(array).all():
        raise MetricInputError(f"{name}: images hold NaN or infinite values")
    return torch.from_numpy(array).unsqueeze(1)


def train_classifier(train: ImageDataset, config: ClassifierConfig | None = None
                     ) -> LeNetClassifier:
    """A classifier trained on ``train`` as ``config`` says, reproducibly: the same data
    and config give the same weights."""
    config = config or ClassifierConfig()
    if len(train) < 2:
        raise MetricInputError(f"{train.name}: too few training images ({len(train)})")
    images = _as_batch(train.images, train.name, train.image_shape)
    labels = torch.from_numpy(train.labels)
    order = np.random.default_rng(config.seed)
    batch_size = min(config.batch_size, len(train))
    batches_per_epoch = len(train) // batch_size
    steps = min(config.steps, config.max_epochs * batches_per_epoch)
    with _deterministic(config.seed):
        model = LeNetClassifier(train.n_classes, train.image_shape)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                     weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
        model.train()
        for epoch in range(math.ceil(steps / batches_per_epoch)):
            permutation = torch.from_numpy(order.permutation(len(train)))
            first_step = epoch * batches_per_epoch
            for batch in range(min(batches_per_epoch, steps - first_step)):
                rows = permutation[batch * batch_size:(batch + 1) * batch_size]
                loss = nn.functional.cross_entropy(model(images[rows]), labels[rows])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
    return model.eval()


def _read_cached(path: Path, train: ImageDataset) -> LeNetClassifier | None:
    """The cached classifier, or None when the file is missing, unreadable or foreign."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("version") != CLASSIFIER_VERSION:
            return None
        model = LeNetClassifier(int(payload["n_classes"]), tuple(payload["image_shape"]))
        model.load_state_dict(payload["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, AttributeError, EOFError,
            pickle.UnpicklingError):
        return None  # missing, corrupt or foreign: the caller trains and replaces it
    if model.image_shape != train.image_shape or payload["n_classes"] != train.n_classes:
        return None
    return model.eval()


def load_or_train_classifier(
    train: ImageDataset, *, config: ClassifierConfig | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    announce: Callable[[str], None] | None = None,
) -> tuple[LeNetClassifier, Path]:
    """The classifier for ``train`` from the cache, trained and cached on a miss.

    ``announce`` (e.g. a print to stderr) hears when training starts, as it takes a while
    on the full benchmarks. Returns the classifier and its cache file.
    """
    config = config or ClassifierConfig()
    path = classifier_cache_path(train, config, cache_root)
    model = _read_cached(path, train)
    if model is not None:
        return model, path
    if announce is not None:
        announce(f"training the {train.name} classifier once; cached in {path}")
    model = train_classifier(train, config)
    payload = {"version": CLASSIFIER_VERSION, "dataset": train.name,
               "n_classes": train.n_classes, "image_shape": list(train.image_shape),
               "config": asdict(config), "state_dict": model.state_dict()}
    with atomic_output(path) as temp:
        torch.save(payload, temp)
    return model, path


@torch.no_grad()
def _outputs(model: LeNetClassifier, images: np.ndarray, name: str,
             head: bool) -> np.ndarray:
    batch = _as_batch(images, name, model.image_shape)
    model.eval()
    parts = [(model(chunk) if head else model.features(chunk)).numpy()
             for chunk in torch.split(batch, _EVAL_BATCH)]
    return np.concatenate(parts)


def extract_features(model: LeNetClassifier, images: np.ndarray,
                     name: str = "images") -> np.ndarray:
    """Penultimate features (N, FEATURE_DIM) of (N, H, W) or (N, 1, H, W) images."""
    return _outputs(model, images, name, head=False).astype(np.float64)


def predict_labels(model: LeNetClassifier, images: np.ndarray, name: str = "images"
                   ) -> np.ndarray:
    """The most likely class of each image."""
    return _outputs(model, images, name, head=True).argmax(axis=1).astype(np.int64)


def classifier_accuracy(model: LeNetClassifier, dataset: ImageDataset) -> float:
    """Fraction of ``dataset`` classified correctly."""
    return float((predict_labels(model, dataset.images, dataset.name) == dataset.labels).mean())
