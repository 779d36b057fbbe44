"""The HTML reports open offline in headless Chromium, every image loads, nothing is blank."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import numpy as np
from matplotlib.image import imread

from calosim.metrics.continual import write_r_matrix
from calosim.report.validation import REPORT_HTML, validate_continual


class _References(HTMLParser):
    """Every tag and every src / href attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name == "src":
                self.sources.append(value)
            elif name == "href":
                self.links.append(value)


def _assert_self_contained(page: str) -> int:
    """Only embedded PNGs and in-page anchors: nothing to fetch. Returns the image count."""
    found = _References()
    found.feed(page)
    assert found.sources and all(s.startswith("data:image/png;base64,") for s in found.sources)
    assert all(link.startswith("#") for link in found.links)
    assert not found.tags & {"link", "script", "iframe", "object", "embed"}
    assert "http://" not in page and "https://" not in page
    return len(found.sources)


def _assert_not_blank(screenshot) -> None:
    pixels = imread(screenshot)[..., :3]
    colours = np.unique((pixels.reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 50, f"screenshot has only {len(colours)} colours"
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.05, f"only {not_white:.1%} of the screenshot is not white"


def test_validation_report_loads_every_image(report, chromium, tmp_path):
    page = report[1] / REPORT_HTML
    n_images = _assert_self_contained(page.read_text())
    assert chromium.loaded_images(page) == (n_images, n_images) == (7, 7)
    _assert_not_blank(chromium.screenshot(page, tmp_path / "shot.png"))


def test_a_broken_image_is_detected(chromium, tmp_path):
    """The browser check itself can fail: a corrupt embedded PNG does not load."""
    truncated = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        f'<img src="data:image/png;base64,{truncated}"><p>text</p></body></html>'
    )
    assert chromium.loaded_images(page) == (0, 1)


def test_continual_report_shows_the_r_matrix(chromium, tmp_path):
    write_r_matrix(
        tmp_path, [[1.0, 4.0, None], [1.4, 2.0, 5.0], [1.9, 2.6, 3.0]], "wasserstein_mean",
        ["low E", "mid E", "high E"], baseline=[6.0, 6.0, 6.0],
    )
    validate_continual(tmp_path, tmp_path / "out")
    page = tmp_path / "out" / REPORT_HTML
    assert _assert_self_contained(page.read_text()) == 1
    assert chromium.loaded_images(page) == (1, 1)
    _assert_not_blank(chromium.screenshot(page, tmp_path / "shot.png", size=(900, 1000)))
