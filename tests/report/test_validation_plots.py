"""The PNGs of `calosim validate`: written, valid, atomic, and no figure left open."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from calosim.errors import CalosimError
from calosim.report import write_validation_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_NAMES = ["channels.png", "photon_sum.png", "mean_images.png"]


def response_set(seed: int, n: int = 150, rate: float = 0.1) -> np.ndarray:
    images = np.random.default_rng(seed).poisson(rate, size=(n, 44, 44)).astype(np.float32)
    images[: n // 5] = 0  # like the real set, a share of empty responses
    return images


def test_writes_the_three_pngs_and_leaves_no_figure_open(tmp_path):
    open_before = plt.get_fignums()
    paths = write_validation_plots(
        response_set(0), response_set(1, n=120, rate=0.12), tmp_path / "plots"
    )
    assert [p.name for p in paths] == EXPECTED_NAMES
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 20_000  # a rendered figure, not an empty canvas
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(EXPECTED_NAMES)
    assert plt.get_fignums() == open_before


def test_floor_is_drawn_when_given(tmp_path):
    reference, generated = response_set(2), response_set(3)
    without = write_validation_plots(reference, generated, tmp_path / "a")
    with_floor = write_validation_plots(
        reference, generated, tmp_path / "b", floor_generated=response_set(4),
        labels=("full sim", "model"),
    )
    # The extra curves change the channel and photon-sum figures, not the mean images.
    for plain, floored in zip(without[:2], with_floor[:2], strict=True):
        assert plain.read_bytes() != floored.read_bytes()


def test_failed_render_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_savefig(self, stream, **kwargs):
        stream.write(PNG_SIGNATURE)
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        write_validation_plots(response_set(5), response_set(6), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_raise_calosim_errors(tmp_path):
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory")
    with pytest.raises(CalosimError, match="cannot create the plot directory"):
        write_validation_plots(response_set(7), response_set(8), occupied)
    with pytest.raises(CalosimError, match=r"model: expected responses of shape"):
        write_validation_plots(
            response_set(7), np.zeros((5, 5)), tmp_path / "c", labels=("sim", "model")
        )
    with pytest.raises(CalosimError, match="parity must be"):
        write_validation_plots(response_set(7), response_set(8), tmp_path / "d", parity="x")
