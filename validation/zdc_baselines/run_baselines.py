"""Train and evaluate the baselines of thesis table 4.3.1 side by side on the ZN Monte Carlo.

Every step is a `calosim` command, recorded in the results file so it can be redone by hand:

    data      calosim simulate --n 120000 --seed 1 --min-photons 10 --out DATA
    split     calosim split DATA --out-dir WORK/split --seed SEED  (the trainer's split)
    floor     calosim simulate --particles WORK/split/test.h5 --seed 2 --out WORK/floor.h5
    per model calosim train configs/zdc/MODEL.yaml --data DATA --out WORK/MODEL --seed SEED
                  --max-minutes M
              calosim generate --model WORK/MODEL/model.pt --particles WORK/split/test.h5
                  --out WORK/MODEL/generated.h5 --seed 3
              calosim validate --reference WORK/split/test.h5 --generated ...
                  --floor WORK/floor.h5 --json
              calosim bench --model WORK/MODEL/model.pt --n 100000 --json
    spread    each model over generation seeds 3-7, beside a second Monte Carlo with the
              same seeds (in-process; see campaign.seed_spread)

Run from the repository root:
    .venv/bin/python validation/zdc_baselines/run_baselines.py --models cvae cwae cgan
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from campaign import (  # noqa: E402
    FLOOR_SEED,
    GENERATION_SEED,
    REPOSITORY,
    SEED_SPREAD_HEADER,
    Campaign,
    campaign_arguments,
    commands_section,
    data_description,
    machine_line,
    seed_spread,
    seed_spread_line,
    start_campaign,
    write_results,
)

# Deja et al. 2020 (IEEE Access) / thesis table 4.3.1, on the GEANT4 ZN set (117,817 responses)
THESIS = {  # row: (MAE, W1)
    "cond VAE": (23.13, 14.92),
    "cond WAE (MMD)": (43.54, 34.46),
    "cond e2e SAE": (13.50, 7.91),
    "cond DCGAN": (68.27, 6.95),
}
THESIS_FLOOR = (6.59, 2.89)
LABELS = {"cvae": "cond VAE", "cwae": "cond WAE (MMD)", "cgan": "cond GAN (WGAN-GP)",
          "e2e_sae": "cond e2e SAE"}


def evaluate_model(
    campaign: Campaign, model: str, args: argparse.Namespace, test: Path, floor: Path
) -> dict[str, Any]:
    """Train (unless a finished run is there and --reuse), generate, validate, benchmark."""
    run_dir = campaign.work_dir / model
    model_file = run_dir / "model.pt"
    if args.reuse and model_file.is_file():
        campaign.note(f"{model}: reused {campaign.shown(model_file)} of an earlier run, "
                      "not retrained")
    else:
        campaign.run("train", REPOSITORY / "configs" / "zdc" / f"{model}.yaml", "--data", args.data,
                     "--out", run_dir, "--seed", str(args.seed), "--max-minutes",
                     str(args.max_minutes), "--no-progress")
    result = campaign.evaluate(model_file, run_dir / "generated.h5", test, floor, args.bench_n)
    result["training"] = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    result["seed_spread"] = seed_spread(model_file, test)
    return result


def _number(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def results_markdown(
    results: dict[str, dict[str, Any]], floor: dict[str, Any], campaign: Campaign,
    args: argparse.Namespace,
) -> str:
    """The results table, the thesis figures beside it, and the commands used."""
    lines = [
        "# ZN baselines of the conditional e2e Sinkhorn AE (thesis table 4.3.1)",
        "",
        f"Data: {data_description(args.data)}; test split of "
        f"seed {args.seed} ({floor['n_reference']} responses, never seen in training). "
        "W1: mean over the 5 channels of the 1-D Wasserstein distance on photon counts; "
        "MAE: channel MAE between each test particle's simulated and generated response; "
        "ratios are to the noise floor (a second Monte Carlo of the same particles). "
        "Lower is better everywhere except responses/s.",
        "",
        "| model | W1 mean | W1 / floor | MAE | MAE / floor | epochs | train min | "
        "stop | responses/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, result in results.items():
        metrics = result["validation"]["metrics"]
        ratios = metrics["ratio_to_floor"]
        training = result["training"]
        cells = [
            f"{LABELS.get(model, model)} (`{model}`)",
            _number(metrics["wasserstein"]["mean"]),
            _number(ratios["wasserstein_mean"]),
            _number(metrics["mae"]),
            _number(ratios.get("mae")),
            str(training["epochs_run"]),
            f"{training['train_seconds'] / 60:.1f}",
            training["stop_reason"],
            f"{result['bench']['responses_per_second']:,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"| floor (2nd Monte Carlo) | {_number(floor['wasserstein']['mean'])} | 1.00 | "
                 f"{_number(floor.get('mae'))} | 1.00 | | | | |")
    seeds = next(iter(results.values()))["seed_spread"]["seeds"]
    lines += [
        "",
        f"One generation seed is one draw. Over generation seeds {', '.join(map(str, seeds))} "
        f"(the table above: seed {GENERATION_SEED} against the seed-{FLOOR_SEED} floor), "
        "against a second Monte Carlo with the same seeds:",
        "",
        *SEED_SPREAD_HEADER,
        *(seed_spread_line(f"{LABELS.get(model, model)} (`{model}`)", result["seed_spread"])
          for model, result in results.items()),
    ]
    lines += [
        "",
        "Thesis table 4.3.1 / Deja et al. 2020, GEANT4 ZN data (not this Monte Carlo; compare "
        "orderings and ratios to the floor, not absolute values):",
        "",
        "| model | MAE | W1 | MAE / floor | W1 / floor |",
        "|---|---|---|---|---|",
    ]
    mae_floor, w_floor = THESIS_FLOOR
    for row, (mae, w1) in THESIS.items():
        lines.append(f"| {row} | {mae:.2f} | {w1:.2f} | {mae / mae_floor:.2f} | "
                     f"{w1 / w_floor:.2f} |")
    lines.append(f"| original data (floor) | {mae_floor:.2f} | {w_floor:.2f} | 1.00 | 1.00 |")
    lines += [
        "",
        "## Conditions",
        "",
        machine_line(campaign),
        f"- Training budget: `--max-minutes {args.max_minutes:g}` per model trained here (a "
        "reused model keeps its own run's budget: see the stop column); the best epoch by "
        "the config's validation monitor is kept.",
        f"- responses/s: `calosim bench --n {args.bench_n}` (default particle gun, batches of "
        "8192, rounding included) on the same loaded machine; read them as lower bounds.",
        "",
        *commands_section(campaign),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = campaign_arguments(
        __doc__.splitlines()[0], "zdc_baselines", 10.0, HERE / "results.md",
        "evaluate an existing WORK/MODEL/model.pt instead of training",
    )
    parser.add_argument("--models", nargs="+", default=["cvae", "cwae", "cgan"])
    args, campaign, test, floor_file = start_campaign(parser, argv)

    results: dict[str, dict[str, Any]] = {}
    floor: dict[str, Any] = {}
    for model in args.models:
        started = time.monotonic()
        results[model] = evaluate_model(campaign, model, args, test, floor_file)
        floor = results[model]["validation"]["floor"]
        summary = results[model]["validation"]["metrics"]
        print(f"{model}: W1 {summary['wasserstein']['mean']:.2f}  MAE {summary['mae']:.2f}  "
              f"({(time.monotonic() - started) / 60:.1f} min)", flush=True)
    write_results(campaign, results, args.results,
                  results_markdown(results, floor, campaign, args))


if __name__ == "__main__":
    main()
