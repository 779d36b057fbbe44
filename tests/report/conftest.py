"""Small response files for report tests, and headless Chromium to open the reports."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from calosim.data import ZDCDataset, write_dataset
from calosim.report.validation import validate_files
from calosim.simulators.gun import ParticleGun
from calosim.simulators.montecarlo import MonteCarloSimulator

N_PARTICLES = 400
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)
# Written into the DOM after the load event: how many <img> decoded to a real picture.
COUNT_IMAGES_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", loaded + "/" + images.length);
});
</script>"""


@dataclass(frozen=True)
class ResponseFiles:
    """reference / floor / model: the same particles; other: different particles."""

    reference: Path
    floor: Path
    model: Path
    other: Path


def _write(path: Path, particles: np.ndarray, pdg: np.ndarray, seed: int, name: str) -> Path:
    responses = MonteCarloSimulator().simulate(particles, seed)
    write_dataset(path, ZDCDataset(responses, particles, pdg), attrs={"simulator": name})
    return path


@pytest.fixture(scope="session")
def response_files(tmp_path_factory) -> ResponseFiles:
    """Monte Carlo files of 400 gun particles: made once for all report tests."""
    directory = tmp_path_factory.mktemp("responses")
    gun = ParticleGun()
    same, other = gun.sample(N_PARTICLES, seed=11), gun.sample(N_PARTICLES // 2, seed=12)
    return ResponseFiles(
        reference=_write(directory / "reference.h5", same.particles, same.pdg, 1, "mc"),
        floor=_write(directory / "floor.h5", same.particles, same.pdg, 2, "mc"),
        model=_write(directory / "model.h5", same.particles, same.pdg, 3, "toy"),
        other=_write(directory / "other.h5", other.particles, other.pdg, 4, "toy"),
    )


@pytest.fixture(scope="session")
def report(response_files, tmp_path_factory) -> tuple[dict, Path]:
    """One report of two models (one paired, one not) beside the floor: (result, dir)."""
    out = tmp_path_factory.mktemp("report")
    result = validate_files(
        response_files.reference, [response_files.model, response_files.other],
        floor=response_files.floor, out_dir=out,
    )
    return result, out


class Chromium:
    """Headless Chromium (Debian package `chromium`), fresh profile per call."""

    def __init__(self, executable: str, scratch: Path) -> None:
        self.executable = executable
        self.scratch = scratch
        self._runs = 0

    def _run(self, *args: str) -> str:
        self._runs += 1
        profile = self.scratch / f"profile-{self._runs}"
        completed = subprocess.run(
            [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        return completed.stdout

    def loaded_images(self, page: Path) -> tuple[int, int]:
        """(images that loaded, images) of the page, counted by Chromium after loading."""
        probe = self.scratch / f"probe-{self._runs}-{page.name}"
        probe.write_text(page.read_text().replace("</body>", COUNT_IMAGES_SCRIPT + "</body>"))
        dom = self._run("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
        found = re.search(r'data-images="(\d+)/(\d+)"', dom)
        assert found, f"the counting script did not run; DOM starts {dom[:300]!r}"
        return int(found.group(1)), int(found.group(2))

    def screenshot(self, page: Path, out: Path, size: tuple[int, int] = (1200, 1600)) -> Path:
        """A PNG screenshot of the top of the page."""
        self._run(f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.as_uri())
        assert out.is_file(), "Chromium wrote no screenshot"
        return out


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Chromium:
    """The headless browser; fails (never skips) when it is not installed."""
    for name in CHROMIUM_CANDIDATES:
        executable = shutil.which(name)
        if executable:
            return Chromium(executable, tmp_path_factory.mktemp("chromium"))
    pytest.fail("headless Chromium is missing: install the Debian packages chromium and "
                "chromium-driver (`make system-deps` as root does it)", pytrace=False)
