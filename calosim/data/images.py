"""Image benchmarks beside the physics data: Fashion-MNIST, MNIST and scikit-learn's digits.

Nothing is downloaded at run time. Fashion-MNIST comes from Debian's
``dataset-fashion-mnist`` package (or a directory the user gives); MNIST from a directory
holding the usual IDX files; the 8 x 8 digits are embedded in scikit-learn and always there,
which makes them the benchmark of the tests.

Images are float32 (N, H, W) in [0, 1], labels int64 (N,).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calosim.errors import CalosimError, DataFormatError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_APT = "apt-get install -y dataset-fashion-mnist"
IMAGE_DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist", "digits")
FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
DIGITS_NATIVE_SIZE = 8
DEFAULT_DIGITS_SIZE = 16
DEFAULT_TEST_FRACTION = 0.2

# IDX type codes (third byte of the magic number) and their big-endian numpy types.
_IDX_TYPES: dict[int, str] = {
    0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"
# Both spellings of the IDX file names circulate (``-idx3`` and ``.idx3``).
_IDX_STEMS: dict[str, tuple[str, str]] = {
    "train-images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train-labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test-images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test-labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Labelled grey-scale images: ``images`` float32 (N, H, W) in [0, 1], ``labels`` int64."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.ndim != 3 or images.dtype != np.float32:
            raise DataFormatError(f"{self.name}: images must be float32 (N, H, W), "
                                  f"got {images.dtype} {images.shape}")
        if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
            raise DataFormatError(f"{self.name}: labels must be int64 ({len(images)},), "
                                  f"got {labels.dtype} {labels.shape}")
        if len(images) and (images.min() < 0 or images.max() > 1):
            raise DataFormatError(f"{self.name}: image values must lie in [0, 1]")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataFormatError(f"{self.name}: labels must lie in 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.images.shape[1]), int(self.images.shape[2]))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: np.ndarray) -> ImageDataset:
        """The rows ``indices`` (in that order) as a new dataset."""
        rows = np.asarray(indices, dtype=np.int64)
        return ImageDataset(self.name, self.images[rows], self.labels[rows], self.class_names,
                            dict(self.attrs))

    def sample(self, n: int, seed: int) -> ImageDataset:
        """At most ``n`` rows drawn without replacement (sorted), fixed by ``seed``."""
        if n >= len(self):
            return self
        rows = np.random.default_rng(seed).choice(len(self), size=n, replace=False)
        return self.subset(np.sort(rows))

    def split(self, test_fraction: float, seed: int) -> ImageSplits:
        """A stratified train/test split (each class cut in the same proportion), seeded."""
        from sklearn.model_selection import train_test_split

        if not 0 < test_fraction < 1:
            raise CalosimError(f"test fraction must lie in (0, 1), got {test_fraction}")
        train_rows, test_rows = train_test_split(
            np.arange(len(self)), test_size=test_fraction, random_state=seed,
            stratify=self.labels,
        )
        return ImageSplits(self.subset(np.sort(train_rows)), self.subset(np.sort(test_rows)))


@dataclass(frozen=True)
class ImageSplits:
    """The training and test parts of one benchmark."""

    train: ImageDataset
    test: ImageDataset

    @property
    def name(self) -> str:
        return self.train.name


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzip-compressed or plain, as a native-endian array.

    The format: two zero bytes, a type code, the number of dimensions, each dimension as a
    big-endian int32, then the values big-endian in C order.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except FileNotFoundError as err:
        raise DataFormatError(f"{path}: no such file") from err
    except (OSError, EOFError) as err:
        raise DataFormatError(f"{path}: cannot read IDX file ({err})") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise DataFormatError(f"{path}: not an IDX file (bad magic number)")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    if n_dims == 0 or len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">i4", n_dims, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(f"{path}: IDX data holds {len(raw) - header} bytes, "
                              f"the header {shape} needs {expected}")
    values = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, part: str) -> Path:
    for stem in _IDX_STEMS[part]:
        for suffix in (".gz", ""):
            candidate = directory / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    raise DataFormatError(f"{directory}: no {_IDX_STEMS[part][0]}[.gz] file")


def _read_idx_part(directory: Path, name: str, part: str,
                   class_names: tuple[str, ...]) -> ImageDataset:
    images_path = _find_idx(directory, f"{part}-images")
    labels_path = _find_idx(directory, f"{part}-labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(f"{images_path}: expected uint8 images (N, H, W), "
                              f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFormatError(f"{labels_path}: expected {len(images)} labels, "
                              f"got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DataFormatError(f"{labels_path}: labels must lie in 0..{len(class_names) - 1}")
    return ImageDataset(name, images.astype(np.float32) / 255.0, labels.astype(np.int64),
                        class_names, {"source": str(directory), "part": part})


def load_idx_benchmark(directory: str | os.PathLike[str], name: str,
                       class_names: tuple[str, ...] = DIGIT_CLASSES) -> ImageSplits:
    """The official train and test parts from a directory of the four MNIST-style IDX files."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataFormatError(f"{directory}: no such directory")
    return ImageSplits(_read_idx_part(directory, name, "train", class_names),
                       _read_idx_part(directory, name, "test", class_names))


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> ImageSplits:
    """Fashion-MNIST (60000 train, 10000 test, 28 x 28) from ``data_dir`` or Debian's package."""
    directory = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    if data_dir is None and not directory.is_dir():
        raise DataFormatError(f"{directory}: Fashion-MNIST is not installed; run "
                              f"`{FASHION_MNIST_APT}` or give --data-dir")
    return load_idx_benchmark(directory, "fashion-mnist", FASHION_CLASSES)


def load_mnist(data_dir: str | os.PathLike[str] | None) -> ImageSplits:
    """MNIST from a directory holding the four IDX files (calosim ships no copy)."""
    if data_dir is None:
        raise CalosimError("MNIST needs --data-dir: a directory with train-images-idx3-ubyte.gz "
                           "and the other three IDX files")
    return load_idx_benchmark(data_dir, "mnist", DIGIT_CLASSES)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Square images resized to ``size`` x ``size`` by bilinear interpolation, kept in [0, 1].

    ``grid_mode`` aligns pixel areas rather than pixel centres, as image resizers do.
    """
    from scipy.ndimage import zoom

    factor = size / images.shape[1]
    resized = zoom(images, (1, factor, factor), order=1, mode="nearest", grid_mode=True)
    return np.clip(resized, 0.0, 1.0).astype(np.float32)


def load_digits(size: int | None = DEFAULT_DIGITS_SIZE, *, seed: int = 0,
                test_fraction: float = DEFAULT_TEST_FRACTION) -> ImageSplits:
    """scikit-learn's 1797 8 x 8 digits, upsampled to ``size`` (None or 8: as is), split
    into stratified train and test parts fixed by ``seed``."""
    from sklearn.datasets import load_digits as sklearn_digits

    if size is not None and size < DIGITS_NATIVE_SIZE:
        raise CalosimError(f"digits size must be at least {DIGITS_NATIVE_SIZE}, got {size}")
    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # pixel values are counts 0..16
    if size is not None and size != DIGITS_NATIVE_SIZE:
        images = resize_images(images, size)
    dataset = ImageDataset("digits", images, bunch.target.astype(np.int64), DIGIT_CLASSES,
                           {"source": "sklearn.datasets.load_digits"})
    return dataset.split(test_fraction, seed)


def load_image_benchmark(name: str, *, data_dir: str | os.PathLike[str] | None = None,
                         digits_size: int | None = DEFAULT_DIGITS_SIZE,
                         seed: int = 0) -> ImageSplits:
    """One of IMAGE_DATASETS by name. ``seed`` fixes the digits' split (the IDX benchmarks
    keep their official one); ``data_dir`` overrides where the IDX files are read."""
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if name == "mnist":
        return load_mnist(data_dir)
    if name == "digits":
        if data_dir is not None:
            raise CalosimError("digits are embedded in scikit-learn and take no --data-dir")
        return load_digits(digits_size, seed=seed)
    raise CalosimError(f"unknown image dataset {name!r}; choose from {', '.join(IMAGE_DATASETS)}")
