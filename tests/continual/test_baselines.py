"""Pieces of the baselines: BinPlay's index codes and assignment, BooVAE's boosted prior,
EWC's Fisher and SI's path integral."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from continual_helpers import tiny_config

import calosim
from calosim.continual.run import resolve_continual_config, train_continual_from_config
from calosim.continual.strategies.binplay import (
    BinPlayOptions,
    binary_codes,
    greedy_assignment,
    index_bits,
)
from calosim.continual.strategies.ewc import EWCStrategy
from calosim.continual.strategies.si import SIStrategy
from calosim.models import build_model
from calosim.models.base import Batch


@pytest.mark.parametrize("prime", [3, 5, 7, 11])
def test_index_codes_are_distinct_for_every_index_below_two_to_the_m(prime: int) -> None:
    codes = index_bits(torch.arange(2**10), prime, 10)
    assert codes.shape == (1024, 10) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(row) for row in codes.tolist()}) == 1024  # Lemma 1
    # bits change often between neighbouring indices
    assert (codes[1:] != codes[:-1]).float().sum(dim=1).mean() > 3


def test_binary_codes_carry_the_task_prefix_and_are_computed_not_stored() -> None:
    options = BinPlayOptions(subvector_bits=8, task_bits=4, subvector_primes=(3, 5))
    first = binary_codes(0, torch.arange(200), options)
    second = binary_codes(1, torch.arange(200), options)
    assert first.shape == (200, options.code_bits) == (200, 4 + 2 * 8)
    assert torch.equal(first[:, 4:], second[:, 4:]) and not torch.equal(first[:, :4],
                                                                        second[:, :4])
    assert torch.equal(first, binary_codes(0, torch.arange(200), options))
    with pytest.raises(ValueError, match="odd primes"):
        BinPlayOptions(subvector_primes=(2, 3))


def test_greedy_assignment_gives_each_example_the_nearest_free_code() -> None:
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    embeddings = torch.tensor([[0.1, 0.0], [0.2, 0.1], [0.0, 0.9]])
    # example 1 goes first and takes code 0, so example 0 gets the next nearest, code 1
    assigned = greedy_assignment(embeddings, codes, torch.tensor([1, 0, 2]))
    assert assigned.tolist() == [1, 0, 2]
    assert greedy_assignment(embeddings, codes, torch.tensor([0, 1, 2])).tolist() == [0, 1, 2]
    rng = torch.Generator().manual_seed(0)
    many = greedy_assignment(torch.randn(50, 4, generator=rng), torch.randn(60, 4, generator=rng),
                             torch.randperm(50, generator=rng))
    assert len(set(many.tolist())) == 50  # no code taken twice


def _boosted(**changes: object):
    torch.manual_seed(0)
    return build_model("boovae", {"latent_dim": 2, "encoder_hidden": [8], "decoder_hidden": [8],
                                  "max_components": 4, **changes})


def test_boosted_prior_mixes_components_by_weight() -> None:
    model = _boosted()
    z = torch.randn(5, 2)
    standard = -0.5 * (z.square() + np.log(2 * np.pi)).sum(dim=1)
    assert torch.allclose(model.prior_log_density(z), standard, atol=1e-5)
    model.add_component(torch.tensor([-4.0, 0.0]), torch.zeros(2), 1.0)
    model.add_component(torch.tensor([4.0, 0.0]), torch.zeros(2), 0.25)
    assert model.component_weights[:2].tolist() == [0.75, 0.25]
    noise = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(1))
    draws = model.sample_prior(noise)
    assert (draws[:, 0] > 0).float().mean().item() == pytest.approx(0.25, abs=0.015)
    mixture = torch.logaddexp(np.log(0.75) - 0.5 * ((z - torch.tensor([-4.0, 0.0])).square()
                                                    + np.log(2 * np.pi)).sum(dim=1),
                              np.log(0.25) - 0.5 * ((z - torch.tensor([4.0, 0.0])).square()
                                                    + np.log(2 * np.pi)).sum(dim=1))
    assert torch.allclose(model.prior_log_density(z), mixture, atol=1e-5)
    batch = Batch(torch.rand(8, 44, 44), torch.randn(8, 9), torch.Generator().manual_seed(0))
    assert torch.isfinite(model.training_losses(batch)["loss"])
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        model.add_component(torch.zeros(2), torch.zeros(2), 0.0)


def test_boovae_run_grows_the_prior_per_task_and_loads(toy, tmp_path) -> None:
    result = train_continual_from_config(tiny_config("boovae", epochs=1), data=toy,
                                         out_dir=tmp_path / "boo", progress=False)
    model = calosim.load(result.model_path).model
    assert int(model.n_components) == 6  # 3 components for each of the 2 tasks
    weights = model.component_weights[:6]
    assert weights.sum().item() == pytest.approx(1.0) and (weights > 0).all()


def test_ewc_fisher_is_non_negative_and_si_importance_follows_the_path(toy) -> None:
    from calosim.continual.scenario import energy_scenario
    from calosim.continual.strategies.base import StrategyContext, prepare_task
    from calosim.data.transforms import ALICE_DEPLOYED

    task = prepare_task(energy_scenario(toy, n_tasks=2, seed=0).tasks[0], ALICE_DEPLOYED)
    for cls in (EWCStrategy, SIStrategy):
        resolved = resolve_continual_config(tiny_config(cls.name, epochs=1))
        torch.manual_seed(0)
        strategy = cls(build_model("cvae", resolved.model), resolved.options,
                       StrategyContext(ALICE_DEPLOYED, training=resolved.training))
        strategy.begin_task(0)
        strategy.learn_task(task)
        if cls is EWCStrategy:
            values = torch.cat([f.flatten() for f in strategy.fisher.values()])
            assert (values >= 0).all() and values.sum() > 0
        else:
            # Omega = w / (delta^2 + xi) with w = -sum g * step: descent makes most w > 0
            values = torch.cat([f.flatten() for f in strategy.importance.values()])
            assert (values > 0).float().mean() > 0.5
        anchor = torch.cat([a.flatten() for a in strategy.anchor.values()])
        now = torch.cat([p.detach().flatten() for p in strategy.model.parameters()])
        assert torch.equal(anchor, now)
