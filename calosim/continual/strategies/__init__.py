"""Continual-learning strategies, one file each, by the name a config's
``continual.strategy`` uses."""

from __future__ import annotations

from calosim.continual.strategies.base import (
    Strategy,
    StrategyContext,
    StrategyOptions,
    TaskData,
    frozen_copy,
    prepare_task,
)
from calosim.continual.strategies.binplay import BinPlayStrategy
from calosim.continual.strategies.boovae import BooVAEStrategy
from calosim.continual.strategies.ewc import EWCStrategy
from calosim.continual.strategies.generative_replay import GenerativeReplayStrategy
from calosim.continual.strategies.joint import JointStrategy
from calosim.continual.strategies.lifelong_vae import LifelongVAEStrategy
from calosim.continual.strategies.mergan import MeRGANStrategy
from calosim.continual.strategies.multiband import MultibandStrategy
from calosim.continual.strategies.naive import NaiveStrategy
from calosim.continual.strategies.si import SIStrategy
from calosim.errors import CalosimError

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        MultibandStrategy,
        NaiveStrategy,
        JointStrategy,
        GenerativeReplayStrategy,
        EWCStrategy,
        SIStrategy,
        LifelongVAEStrategy,
        MeRGANStrategy,
        BinPlayStrategy,
        BooVAEStrategy,
    )
}


def strategy_class(name: str) -> type[Strategy]:
    """The strategy registered as ``name``; CalosimError naming the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise CalosimError(f"unknown continual strategy {name!r} (known: {known})") from None


__all__ = [
    "STRATEGIES", "Strategy", "StrategyContext", "StrategyOptions",
    "TaskData", "frozen_copy", "prepare_task", "strategy_class",
]
