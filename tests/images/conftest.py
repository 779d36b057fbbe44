from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from image_helpers import CONFIGS, DIGITS_CONFIGS, invoke


@pytest.fixture(scope="session", autouse=True)
def classifier_cache(tmp_path_factory) -> Iterator[Path]:
    """A private classifier cache: the digits' LeNet is trained once for this session."""
    root = tmp_path_factory.mktemp("calosim-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALOSIM_CACHE", str(root))
        yield root


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory) -> dict[str, Path]:
    """Each digits config trained for two short epochs through `calosim train`."""
    root = tmp_path_factory.mktemp("image-runs")
    runs = {}
    for name in DIGITS_CONFIGS:
        out = root / name
        result = invoke("train", CONFIGS / f"{name}.yaml", "training.epochs=2",
                        "--out", out, "--no-progress")
        assert result.exit_code == 0, result.output
        runs[name] = out
    return runs
