"""calosim: learned fast simulation of calorimeter responses.

    import calosim
    mc = calosim.load("mc")                        # the embedded Monte Carlo of the ALICE ZN
    sae = calosim.load("runs/sae/model.pt")        # any trained model: the same interface
    responses = sae.simulate(particles, seed=1)    # (N, 9) -> (N, 44, 44) photon counts
    calosim.channels(responses)                    # (N, 5) ZN channels

Heavy modules (torch, scipy) load on first use, so the CLI starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from calosim._version import __version__

if TYPE_CHECKING:
    from calosim.metrics.zdc import channels
    from calosim.simulators.base import DetectorSimulator
    from calosim.simulators.loading import load

__all__ = ["DetectorSimulator", "__version__", "channels", "load"]

_LAZY = {
    "load": "calosim.simulators.loading",
    "channels": "calosim.metrics.zdc",
    "DetectorSimulator": "calosim.simulators.base",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'calosim' has no attribute {name!r}")
