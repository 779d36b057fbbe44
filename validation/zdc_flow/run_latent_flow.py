"""Validate latent flow matching on the ZN Monte Carlo: fidelity and speed per ODE solver
and number of steps, and the chosen setting over several generation seeds.

Every data step is a `calosim` command, recorded in the results so it can be redone:

    split     calosim split DATA --out-dir WORK/split --seed SEED  (the trainer's split)
    floor     calosim simulate --particles WORK/split/test.h5 --seed 2 --out WORK/floor.h5
    flow      calosim train configs/zdc/latent_flow.yaml model.autoencoder=SAE
                  --data DATA --out WORK/latent_flow --seed SEED --max-minutes M
    per S, K  WORK/latent_flow/S_K.pt: the model file integrating with solver S (euler,
                  heun) in K steps (``model.set_sampling(...)``, then saved again)
              calosim generate / validate / bench --threads T, as the diffusion campaign
    spread    --spread SOLVER STEPS over generation seeds 3-7, beside a second Monte Carlo
              with the same seeds (in-process; see campaign.seed_spread)

Run from the repository root:
    .venv/bin/python validation/zdc_flow/run_latent_flow.py --autoencoder SAE.pt --data DATA
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from campaign import (  # noqa: E402
    REPOSITORY,
    SEED_SPREAD_HEADER,
    campaign_arguments,
    commands_section,
    data_description,
    machine_line,
    resaved,
    seed_spread,
    seed_spread_line,
    start_campaign,
    write_results,
)

from calosim.flow import build_solver  # noqa: E402

GRID = (("euler", 2), ("euler", 4), ("euler", 8), ("heun", 2), ("heun", 3), ("heun", 4),
        ("heun", 8))


def main(argv: Sequence[str] | None = None) -> None:
    parser = campaign_arguments(
        __doc__.splitlines()[0], "zdc_flow", 30.0, HERE / "results.md",
        "evaluate an existing WORK/latent_flow/model.pt",
    )
    parser.add_argument("--autoencoder", type=Path, required=True,
                        help="e2e SAE model file (model.shape_loss=photon_likelihood)")
    parser.add_argument("--spread", nargs=2, default=["heun", "4"], metavar=("SOLVER", "STEPS"))
    parser.add_argument("--rounding", choices=["nearest", "stochastic"], default="stochastic")
    parser.add_argument("--bench-threads", type=int, default=1)
    args, campaign, test, floor = start_campaign(parser, argv)
    run_dir = campaign.work_dir / "latent_flow"
    model_file = run_dir / "model.pt"
    if args.reuse and model_file.is_file():
        campaign.note(f"latent_flow: reused {model_file} of an earlier run, not retrained")
    else:
        campaign.run("train", REPOSITORY / "configs" / "zdc" / "latent_flow.yaml",
                     f"model.autoencoder={args.autoencoder.resolve()}", "--data", args.data,
                     "--out", run_dir, "--seed", str(args.seed), "--max-minutes",
                     str(args.max_minutes), "--no-progress")
    results: dict[str, Any] = {"autoencoder": str(args.autoencoder.resolve()), "grid": {}}
    for solver, steps in GRID:
        variant = resaved(model_file, run_dir / f"{solver}_{steps}.pt", args.rounding,
                          solver=solver, sampling_steps=steps)
        campaign.note(f"{variant.name}: model.pt re-saved with set_sampling(solver={solver!r}, "
                      f"sampling_steps={steps}), rounding {args.rounding}")
        results["grid"][f"{solver} {steps}"] = result = campaign.evaluate(
            variant, run_dir / f"generated_{solver}_{steps}.h5", test, floor, args.bench_n,
            args.bench_threads)
        metrics, bench = result["validation"]["metrics"], result["bench"]
        print(f"{solver} {steps}: W1 {metrics['wasserstein']['mean']:.2f}  MAE "
              f"{metrics['mae']:.2f}  {bench['responses_per_second']:,.0f}/s", flush=True)
    solver, steps = args.spread[0], int(args.spread[1])
    variant = run_dir / f"{solver}_{steps}.pt"
    results["seed_spread"] = {"solver": solver, "steps": steps, **seed_spread(variant, test)}
    results["training"] = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    write_results(campaign, results, args.results, markdown(results, campaign, args))


def markdown(results: dict[str, Any], campaign: Any, args: Any) -> str:
    training = results["training"]
    lines = [
        "# Latent flow matching on the ZN: validation", "",
        f"Data: {data_description(args.data)}; test split of seed {args.seed} (never seen in "
        "training). W1: mean over the 5 channels of the 1-D Wasserstein distance on photon "
        "counts; MAE: channel MAE; ratios to the noise floor (a second Monte Carlo of the "
        f"same particles). Autoencoder: `{results['autoencoder']}`.", "",
        f"Training: {training['epochs_run']} epochs, {training['train_seconds'] / 60:.1f} min, "
        f"stop: {training['stop_reason']}.", "",
        "| solver, steps | network evaluations | W1 (x floor) | MAE (x floor) | responses/s "
        "(1 thread) |",
        "|---|---|---|---|---|",
    ]
    for key, result in results["grid"].items():
        solver, steps = key.split()
        metrics, floor = result["validation"]["metrics"], result["validation"]["floor"]
        w1, mae = metrics["wasserstein"]["mean"], metrics["mae"]
        w1_floor, mae_floor = floor["wasserstein"]["mean"], floor["mae"]
        evaluations = build_solver(solver, int(steps)).evaluations
        lines.append(
            f"| {key} | {evaluations} | {w1:.2f} ({w1 / w1_floor:.2f}x) | {mae:.2f} "
            f"({mae / mae_floor:.2f}x) | {result['bench']['responses_per_second']:,.0f} |")
    spread = results["seed_spread"]
    lines += ["", f"Over generation seeds 3-7 ({spread['solver']} {spread['steps']} steps), "
              "against a second Monte Carlo with the same seeds:", "", *SEED_SPREAD_HEADER,
              seed_spread_line(f"latent flow, {spread['solver']} {spread['steps']}", spread),
              "", "## Conditions", "", machine_line(campaign), "", *commands_section(campaign)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
