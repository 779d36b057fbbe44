from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from calosim.cli import cli
from calosim.data.images import ImageSplits, load_digits
from calosim.metrics.classifier import (
    CACHE_ENV,
    FEATURE_DIM,
    ClassifierConfig,
    LeNetClassifier,
    cache_root,
    classifier_accuracy,
    classifier_cache_path,
    extract_features,
    load_or_train_classifier,
    train_classifier,
)
from calosim.metrics.images import image_floor, image_scores
from calosim.metrics.observables import MetricInputError

TINY = ClassifierConfig(steps=4, batch_size=32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions run faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> ImageSplits:
    return load_digits(8, seed=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calosim-cache")


@pytest.fixture(scope="module")
def trained(digits, cache) -> tuple[LeNetClassifier, Path]:
    """The default classifier of the 8 x 8 digits, trained once into ``cache``."""
    return load_or_train_classifier(digits.train, cache_root=cache)


def test_classifier_is_accurate_on_digits(trained, digits, cache):
    model, path = trained
    assert path.is_file() and path.parent == cache / "classifiers"
    assert classifier_accuracy(model, digits.test) > 0.9


def test_classifier_is_read_back_from_the_cache(trained, digits, cache):
    model, path = trained
    heard: list[str] = []
    cached, cached_path = load_or_train_classifier(digits.train, cache_root=cache,
                                                   announce=heard.append)
    assert heard == [] and cached_path == path
    np.testing.assert_array_equal(extract_features(cached, digits.test.images),
                                  extract_features(model, digits.test.images))


def test_training_is_deterministic_and_leaves_global_state_alone(digits):
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    first = train_classifier(digits.train, TINY)
    assert torch.equal(torch.rand(3), expected_draw)
    assert not torch.are_deterministic_algorithms_enabled()
    second = train_classifier(digits.train, TINY)
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    other_seed = train_classifier(digits.train, ClassifierConfig(steps=4, batch_size=32, seed=1))
    assert not torch.equal(first.head[1].weight, other_seed.head[1].weight)


def test_cache_key_follows_data_and_settings(digits, tmp_path):
    path = classifier_cache_path(digits.train, TINY, tmp_path)
    assert path == classifier_cache_path(digits.train, TINY, tmp_path)
    assert path.parent == tmp_path / "classifiers" and path.name.startswith("digits-v1-")
    fewer = digits.train.subset(np.arange(len(digits.train) - 1))
    assert classifier_cache_path(fewer, TINY, tmp_path) != path
    assert classifier_cache_path(digits.train, ClassifierConfig(steps=5, batch_size=32),
                                 tmp_path) != path


def test_cache_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "calosim"


def test_a_corrupt_cache_file_is_retrained_over(digits, tmp_path):
    path = classifier_cache_path(digits.train, TINY, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    heard: list[str] = []
    model, written = load_or_train_classifier(digits.train, config=TINY, cache_root=tmp_path,
                                              announce=heard.append)
    assert written == path and len(heard) == 1 and str(path) in heard[0]
    payload = torch.load(path, weights_only=True)
    assert payload["dataset"] == "digits" and payload["image_shape"] == [8, 8]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    reloaded, _ = load_or_train_classifier(digits.train, config=TINY, cache_root=tmp_path)
    assert torch.equal(reloaded.head[1].weight, model.head[1].weight)


def test_features_are_the_penultimate_layer(trained, digits):
    model, _ = trained
    images = digits.test.images[:50]
    features = extract_features(model, images)
    assert features.shape == (50, FEATURE_DIM) and (features >= 0).all()  # after a ReLU
    np.testing.assert_array_equal(extract_features(model, images[:, None]), features)
    with pytest.raises(MetricInputError, match=r"generated: expected images \(N, 8, 8\)"):
        extract_features(model, np.zeros((5, 16, 16), np.float32), "generated")
    with pytest.raises(MetricInputError, match="NaN"):
        extract_features(model, np.full((5, 8, 8), np.nan, np.float32))


def test_floor_is_good_and_noise_is_worse(trained, digits, cache):
    floor = image_floor(digits, cache_root=cache)
    assert floor["n_reference"] == floor["n_candidate"] == len(digits.test)
    assert floor["precision"] > 0.8 and floor["recall"] > 0.8
    assert floor["classifier_accuracy"] > 0.9
    model, _ = trained
    rng = np.random.default_rng(0)
    noisy = np.clip(digits.test.images + rng.normal(0, 0.3, digits.test.images.shape), 0, 1)
    blurred = image_scores(model, digits.train.sample(len(digits.test), 0).images, noisy)
    assert blurred.fid > 3 * floor["fid"]
    assert blurred.precision < floor["precision"]


def test_images_floor_command_prints_the_floor(trained, digits, cache, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(cache))
    runner = CliRunner()
    result = runner.invoke(cli, ["images-floor", "--dataset", "digits", "--digits-size", "8",
                                 "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # the classifier came from the cache
    printed = json.loads(result.stdout)
    assert printed == image_floor(digits, cache_root=cache)
    table = runner.invoke(cli, ["images-floor", "--dataset", "digits", "--digits-size", "8"])
    assert f"{printed['fid']:.4g}" in table.stdout and "classifier accuracy" in table.stdout


def test_images_floor_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["images-floor", "--dataset", "fashion-mnist",
                                      "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"calosim: error: {tmp_path / 'none'}: no such directory"]
