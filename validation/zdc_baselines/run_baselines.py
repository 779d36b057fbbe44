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

Run from the repository root:
    .venv/bin/python validation/zdc_baselines/run_baselines.py --models cvae cwae cgan
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calosim.training.trainer import write_text_atomic

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
CLI = [sys.executable, "-c", "from calosim.cli import main; main()"]
FLOOR_SEED = 2
GENERATION_SEED = 3
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


class Campaign:
    """Runs calosim commands, logging each one as a user would type it."""

    def __init__(self, work_dir: Path, threads: int) -> None:
        self.work_dir = work_dir
        self.threads = threads
        self.commands: list[str] = []
        # one torch thread per process: on a shared, busy machine more threads spin and stall
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def run(self, *args: str | Path) -> str:
        words = [str(a) for a in args]
        # shown relative to the repository root, where the commands are meant to be run
        shown = "calosim " + shlex.join(w.removeprefix(f"{REPOSITORY}/") for w in words)
        self.commands.append(shown)
        print(f"$ {shown}", flush=True)
        done = subprocess.run([*CLI, *words], cwd=REPOSITORY, env=self.env, text=True,
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"command failed ({done.returncode}): {shown}\n{done.stderr[-2000:]}")
        return done.stdout

    def run_json(self, *args: str | Path) -> dict[str, Any]:
        return json.loads(self.run(*args, "--json"))


def evaluate_model(
    campaign: Campaign, model: str, args: argparse.Namespace, test: Path, floor: Path
) -> dict[str, Any]:
    """Train (unless a finished run is there and --reuse), generate, validate, benchmark."""
    run_dir = campaign.work_dir / model
    model_file = run_dir / "model.pt"
    if args.reuse and model_file.is_file():
        shown = str(model_file).removeprefix(f"{REPOSITORY}/")
        campaign.commands.append(f"# {model}: reused {shown} of an earlier run, not retrained")
    else:
        campaign.run("train", REPOSITORY / "configs" / "zdc" / f"{model}.yaml", "--data", args.data,
                     "--out", run_dir, "--seed", str(args.seed), "--max-minutes",
                     str(args.max_minutes), "--no-progress")
    generated = run_dir / "generated.h5"
    campaign.run("generate", "--model", model_file, "--particles", test, "--out", generated,
                 "--seed", str(GENERATION_SEED), "--no-progress")
    validation = campaign.run_json("validate", "--reference", test, "--generated", generated,
                                   "--floor", floor)
    bench = campaign.run_json("bench", "--model", model_file, "--n", str(args.bench_n),
                              "--threads", str(campaign.threads))
    training = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {"validation": validation, "bench": bench, "training": training}


def _number(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def results_markdown(
    results: dict[str, dict[str, Any]], floor: dict[str, Any], campaign: Campaign,
    args: argparse.Namespace, load: Sequence[float],
) -> str:
    """The results table, the thesis figures beside it, and the commands used."""
    lines = [
        "# ZN baselines of the conditional e2e Sinkhorn AE (thesis table 4.3.1)",
        "",
        f"Data: `{args.data}` (calosim Monte Carlo, seed 1, >= 10 photons); test split of "
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
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other "
        f"developers' jobs (load average {load[0]:.1f} at the start, {load[1]:.1f} at the "
        f"end); torch on {args.threads} thread(s) per process (OMP_NUM_THREADS), CPU only.",
        f"- Training budget: `--max-minutes {args.max_minutes:g}` per model, so every model "
        "stopped on the time budget after few epochs: these are short-budget figures, not "
        "converged ones. The best epoch by validation W1 + MAE is kept.",
        f"- responses/s: `calosim bench --n {args.bench_n}` (default particle gun, batches of "
        "8192, rounding included) on the same loaded machine; read them as lower bounds.",
        "",
        "## Commands used",
        "",
        "```",
        *campaign.commands,
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/calosim-data/zn120k.h5"))
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / "runs" / "zdc_baselines")
    parser.add_argument("--models", nargs="+", default=["cvae", "cwae", "cgan"])
    parser.add_argument("--seed", type=int, default=1, help="run and split seed")
    parser.add_argument("--max-minutes", type=float, default=10.0)
    parser.add_argument("--bench-n", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate an existing WORK/MODEL/model.pt instead of training")
    parser.add_argument("--results", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    args.data = args.data.resolve()

    load_start = os.getloadavg()[0]
    campaign = Campaign(args.work_dir.resolve(), args.threads)
    if args.data.is_file():
        campaign.commands.append(f"# data: reused {args.data}")
    else:
        campaign.run("simulate", "--n", "120000", "--seed", "1", "--min-photons", "10",
                     "--out", args.data, "--no-progress")
    split_dir = campaign.work_dir / "split"
    test, floor_file = split_dir / "test.h5", campaign.work_dir / "floor.h5"
    campaign.run("split", args.data, "--out-dir", split_dir, "--seed", str(args.seed))
    if floor_file.is_file():
        shown = str(floor_file).removeprefix(f"{REPOSITORY}/")
        campaign.commands.append(f"# floor: reused {shown} of an earlier run")
    else:
        campaign.run("simulate", "--particles", test, "--seed", str(FLOOR_SEED),
                     "--out", floor_file, "--no-progress")

    results: dict[str, dict[str, Any]] = {}
    floor: dict[str, Any] = {}
    for model in args.models:
        started = time.monotonic()
        results[model] = evaluate_model(campaign, model, args, test, floor_file)
        floor = results[model]["validation"]["floor"]
        summary = results[model]["validation"]["metrics"]
        print(f"{model}: W1 {summary['wasserstein']['mean']:.2f}  MAE {summary['mae']:.2f}  "
              f"({(time.monotonic() - started) / 60:.1f} min)", flush=True)
    write_text_atomic(campaign.work_dir / "results.json", json.dumps(results, indent=2) + "\n")
    text = results_markdown(results, floor, campaign, args, (load_start, os.getloadavg()[0]))
    write_text_atomic(args.results, text)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
