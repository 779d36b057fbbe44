from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from calosim.data.images import (
    FASHION_CLASSES,
    ImageDataset,
    load_digits,
    load_fashion_mnist,
    load_idx_benchmark,
    load_image_benchmark,
    read_idx,
    resize_images,
)
from calosim.errors import CalosimError, DataFormatError

_TYPE_CODES = {"u1": 0x08, ">i4": 0x0C, ">f8": 0x0E}


def idx_bytes(values: np.ndarray, dtype: str) -> bytes:
    """The IDX encoding of ``values``, written from the format's description."""
    header = bytes([0, 0, _TYPE_CODES[dtype], values.ndim])
    header += b"".join(struct.pack(">i", size) for size in values.shape)
    return header + values.astype(dtype).tobytes()


def write_idx(path: Path, values: np.ndarray, dtype: str = "u1", compress: bool = True) -> Path:
    data = idx_bytes(values, dtype)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", ["u1", ">i4", ">f8"])
def test_read_idx_round_trips_gzip_and_plain_files(tmp_path, dtype, compress):
    values = np.arange(2 * 3 * 4).reshape(2, 3, 4) * 7 % 251
    if dtype == ">f8":
        values = values - 100.5
    read = read_idx(write_idx(tmp_path / "x-idx3-ubyte", values, dtype, compress))
    assert read.shape == (2, 3, 4)
    assert read.dtype.isnative
    np.testing.assert_array_equal(read, values)


@pytest.mark.parametrize("content, problem", [
    (b"\x01\x02\x08\x01", "magic"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x02", "header"),
    (idx_bytes(np.zeros((2, 2)), "u1")[:-1], "bytes"),
])
def test_read_idx_rejects_broken_files_naming_them(tmp_path, content, problem):
    path = tmp_path / "broken.idx"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=problem) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_read_idx_of_a_missing_file_is_a_data_format_error(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        read_idx(tmp_path / "none.gz")


def _fake_benchmark(directory: Path, n_train: int = 6, n_test: int = 4,
                    n_labels: int | None = None) -> Path:
    rng = np.random.default_rng(3)
    for part, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{part}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 5, 5)))
        write_idx(directory / f"{part}-labels-idx1-ubyte.gz",
                  rng.integers(0, 10, n_labels or n))
    return directory


def test_idx_benchmark_scales_pixels_to_unit_interval(tmp_path):
    splits = load_idx_benchmark(_fake_benchmark(tmp_path), "tiny")
    raw = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    assert (len(splits.train), len(splits.test)) == (6, 4)
    assert splits.train.images.dtype == np.float32 and splits.train.labels.dtype == np.int64
    np.testing.assert_allclose(splits.train.images, raw / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(splits.train.labels, read_idx(
        tmp_path / "train-labels-idx1-ubyte.gz"))


def test_idx_benchmark_with_mismatched_label_count_names_the_file(tmp_path):
    _fake_benchmark(tmp_path, n_labels=5)
    with pytest.raises(DataFormatError, match="train-labels-idx1-ubyte.gz: expected 6 labels"):
        load_idx_benchmark(tmp_path, "tiny")


def test_idx_benchmark_without_the_files_names_the_directory(tmp_path):
    with pytest.raises(DataFormatError, match="no train-images-idx3-ubyte"):
        load_idx_benchmark(tmp_path, "tiny")


def test_fashion_mnist_from_the_debian_package():
    splits = load_fashion_mnist()
    assert splits.train.images.shape == (60000, 28, 28)
    assert splits.test.images.shape == (10000, 28, 28)
    assert splits.train.class_names == FASHION_CLASSES
    # Fashion-MNIST is balanced: 6000 and 1000 images per class.
    np.testing.assert_array_equal(np.bincount(splits.train.labels), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(splits.test.labels), np.full(10, 1000))
    assert 0.2 < splits.test.images.mean() < 0.4
    assert splits.test.images.min() == 0.0 and splits.test.images.max() == 1.0


def test_digits_as_is_and_upsampled():
    native = load_digits(8, seed=0)
    upsampled = load_digits(16, seed=0)
    assert native.train.images.shape[1:] == (8, 8)
    assert upsampled.train.images.shape[1:] == (16, 16)
    assert len(native.train) + len(native.test) == 1797
    assert len(native.test) == pytest.approx(0.2 * 1797, abs=1)
    for images in (native.train.images, upsampled.train.images):
        assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1
    # Upsampling keeps each image's mean brightness close.
    np.testing.assert_allclose(upsampled.train.images.mean(axis=(1, 2)),
                               native.train.images.mean(axis=(1, 2)), atol=0.03)
    np.testing.assert_array_equal(upsampled.train.labels, native.train.labels)


def test_digits_split_is_seeded_and_stratified():
    first, again, other = load_digits(8, seed=1), load_digits(8, seed=1), load_digits(8, seed=2)
    np.testing.assert_array_equal(first.test.images, again.test.images)
    assert not np.array_equal(first.test.images, other.test.images)
    test_share = np.bincount(first.test.labels) / (
        np.bincount(first.test.labels) + np.bincount(first.train.labels))
    np.testing.assert_allclose(test_share, 0.2, atol=0.01)
    # The parts are disjoint: no test image appears among the training images.
    train_rows = {image.tobytes() for image in first.train.images}
    shared = sum(image.tobytes() in train_rows for image in first.test.images)
    assert shared == 0


def test_resize_keeps_a_constant_image_constant():
    images = np.full((2, 8, 8), 0.25, dtype=np.float32)
    np.testing.assert_allclose(resize_images(images, 28), 0.25, rtol=1e-6)


def test_sample_is_seeded_and_without_replacement():
    dataset = load_digits(8, seed=0).train
    first, again = dataset.sample(100, seed=4), dataset.sample(100, seed=4)
    np.testing.assert_array_equal(first.images, again.images)
    assert len({image.tobytes() for image in first.images}) == len(first) == 100
    assert dataset.sample(10**6, seed=4) is dataset


@pytest.mark.parametrize("images, labels, problem", [
    (np.full((2, 4, 4), 1.5, np.float32), np.zeros(2, np.int64), r"\[0, 1\]"),
    (np.zeros((2, 4, 4), np.float64), np.zeros(2, np.int64), "float32"),
    (np.zeros((2, 4, 4), np.float32), np.array([0, 1], np.int32), "int64"),
    (np.zeros((2, 4, 4), np.float32), np.array([0, 10], np.int64), r"0\.\.9"),
])
def test_image_dataset_rejects_bad_arrays(images, labels, problem):
    with pytest.raises(DataFormatError, match=problem):
        ImageDataset("bad", images, labels, tuple("0123456789"))


def test_benchmark_names_and_options_are_checked(tmp_path):
    with pytest.raises(CalosimError, match="unknown image dataset"):
        load_image_benchmark("cifar")
    with pytest.raises(CalosimError, match="--data-dir"):
        load_image_benchmark("mnist")
    with pytest.raises(CalosimError, match="no --data-dir"):
        load_image_benchmark("digits", data_dir=tmp_path)
    with pytest.raises(CalosimError, match="at least 8"):
        load_digits(4)
    mnist = load_image_benchmark("mnist", data_dir=_fake_benchmark(tmp_path))
    assert mnist.name == "mnist" and mnist.train.class_names[3] == "3"
