"""What the validation campaigns share: running `calosim` commands as a user would type
them, the held-out split and its Monte Carlo floor, and results files whose hand-written
notes survive a rerun.

The campaign scripts (validation/*/run_*.py) import this file from their parent folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calosim.training.trainer import write_text_atomic

REPOSITORY = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from calosim.cli import main; main()"]
FLOOR_SEED = 2
GENERATION_SEED = 3
NOTES_MARKER = "<!-- notes: kept when the results are rewritten -->"


class Campaign:
    """Runs calosim commands, logging each one as a user would type it."""

    def __init__(self, work_dir: Path, threads: int) -> None:
        self.work_dir = work_dir
        self.threads = threads
        self.load_at_start = os.getloadavg()[0]
        self.commands: list[str] = []
        # one torch thread per process: on a shared, busy machine more threads spin and stall
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def note(self, text: str) -> None:
        self.commands.append(f"# {text}")

    def shown(self, path: Path) -> str:
        """A path as the results show it: relative to the repository root when inside."""
        return str(path).removeprefix(f"{REPOSITORY}/")

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> str:
        words = [str(a) for a in args]
        shown = "calosim " + shlex.join(w.removeprefix(f"{REPOSITORY}/") for w in words)
        self.commands.append(shown)
        print(f"$ {shown}", flush=True)
        done = subprocess.run([*CLI, *words], cwd=REPOSITORY, env=env or self.env, text=True,
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"command failed ({done.returncode}): {shown}\n{done.stderr[-2000:]}")
        return done.stdout

    def run_json(self, *args: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
        return json.loads(self.run(*args, "--json", env=env))

    def evaluate(self, model_file: Path, generated: Path, test: Path, floor: Path,
                 bench_n: int, bench_threads: int | None = None) -> dict[str, Any]:
        """Generate for the test particles, validate beside the floor, benchmark the speed:
        {"validation": ..., "bench": ...} (the commands' JSON)."""
        threads = self.threads if bench_threads is None else bench_threads
        env = {**self.env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.run("generate", "--model", model_file, "--particles", test, "--out", generated,
                 "--seed", str(GENERATION_SEED), "--no-progress")
        validation = self.run_json("validate", "--reference", test, "--generated", generated,
                                   "--floor", floor)
        bench = self.run_json("bench", "--model", model_file, "--n", str(bench_n),
                              "--threads", str(threads), env=env)
        return {"validation": validation, "bench": bench}

    def split_and_floor(self, data: Path, seed: int) -> tuple[Path, Path]:
        """The test split of ``seed`` (the trainer's split of a run with that seed) and a
        second Monte Carlo of its particles; the data file is simulated when missing."""
        if data.is_file():
            self.note(f"data: reused {data}")
        else:
            self.run("simulate", "--n", "120000", "--seed", "1", "--min-photons", "10",
                     "--out", data, "--no-progress")
        split_dir = self.work_dir / "split"
        test, floor = split_dir / "test.h5", self.work_dir / "floor.h5"
        self.run("split", data, "--out-dir", split_dir, "--seed", str(seed))
        if floor.is_file():
            self.note(f"floor: reused {self.shown(floor)} of an earlier run")
        else:
            self.run("simulate", "--particles", test, "--seed", str(FLOOR_SEED), "--out", floor,
                     "--no-progress")
        return test, floor


def reconstruct_counts(model: Any, responses: np.ndarray, rounding: str, seed: int) -> np.ndarray:
    """Photon counts decoded from an autoencoder's codes of ``responses`` (empty responses
    stay empty, as a gate would keep them), rounded like generation: "stochastic" (floor(x
    + u), unbiased channel sums) or "nearest"."""
    import torch

    from calosim.data.transforms import counts_from_log, log_counts

    images = torch.from_numpy(log_counts(responses.astype(np.float32)))
    with torch.inference_mode():
        decoded = torch.cat([model.decode(model.encode(chunk)) for chunk in images.split(4096)])
    counts = counts_from_log(decoded).numpy()
    if rounding == "stochastic":
        rng = np.random.default_rng(seed)
        counts = np.floor(counts + rng.random(counts.shape, dtype=counts.dtype))
    else:
        counts = np.round(counts)
    counts[responses.reshape(len(responses), -1).max(axis=1) <= 0] = 0
    return counts


def resaved(model_file: Path, out: Path, rounding: str, **sampling: Any) -> Path:
    """A copy of a model file that rounds its counts with ``rounding`` and samples with
    ``sampling`` (the model's ``set_sampling`` settings, if any): generation options, not
    weights."""
    import torch

    from calosim.training.checkpoint import load_simulator, save_model_file

    simulator = load_simulator(model_file)
    simulator.round_counts, simulator.rounding = True, rounding
    if sampling:
        simulator.model.set_sampling(**sampling)
    payload = torch.load(model_file, map_location="cpu", weights_only=True)
    return save_model_file(out, simulator, data_fingerprint=payload.get("data_fingerprint"),
                           seed=payload.get("seed"), extra=payload.get("extra"))


SPREAD_SEEDS = (3, 4, 5, 6, 7)


def seed_spread(model_file: Path, test: Path, seeds: Sequence[int] = SPREAD_SEEDS
                ) -> dict[str, Any]:
    """W1 and MAE of a model over several generation seeds, beside a second Monte Carlo
    with the same seeds: one seed is one draw, and the floor itself moves by 10-20 %
    between seeds, so a ratio to the floor is read on the means."""
    from calosim.data import read_dataset
    from calosim.metrics import channel_mae, channel_wasserstein
    from calosim.simulators.montecarlo import MonteCarloSimulator
    from calosim.training.checkpoint import load_simulator

    reference = read_dataset(test)
    real = reference.responses[:]
    rows: dict[str, dict[str, list[float]]] = {}
    for name, simulator in (("model", load_simulator(model_file)),
                            ("floor", MonteCarloSimulator())):
        rows[name] = {"w1": [], "mae": []}
        for seed in seeds:
            generated = simulator.simulate(reference.particles, seed=seed)
            rows[name]["w1"].append(float(channel_wasserstein(real, generated).mean))
            rows[name]["mae"].append(float(channel_mae(real, generated)))
    means = {name: {key: float(np.mean(values)) for key, values in row.items()}
             for name, row in rows.items()}
    return {"seeds": list(seeds), **rows, "means": means,
            "w1_ratio_of_means": means["model"]["w1"] / means["floor"]["w1"],
            "mae_ratio_of_means": means["model"]["mae"] / means["floor"]["mae"]}


def seed_spread_line(label: str, spread: dict[str, Any]) -> str:
    """One markdown table row: label, W1 per seed, mean, floor mean, ratio of the means."""
    return (f"| {label} | " + " / ".join(f"{w:.2f}" for w in spread["model"]["w1"])
            + f" | {spread['means']['model']['w1']:.2f} | "
            + " / ".join(f"{w:.2f}" for w in spread["floor"]["w1"])
            + f" | {spread['means']['floor']['w1']:.2f} | "
            f"**{spread['w1_ratio_of_means']:.2f}x** | {spread['mae_ratio_of_means']:.2f}x |")


SEED_SPREAD_HEADER = [
    "| model | W1 per generation seed | mean | floor W1 per MC seed | mean | W1 ratio of means "
    "| MAE ratio of means |",
    "|---|---|---|---|---|---|---|",
]


def data_description(data: Path) -> str:
    """How a data file was made, from the attributes calosim writes into it."""
    from calosim.data.dataset import describe_file

    attrs = describe_file(data).get("attrs", {})
    parts = [f"seed {attrs['seed']}" if "seed" in attrs else "seed unrecorded"]
    if attrs.get("min_photons"):
        parts.append(f">= {attrs['min_photons']:g} photons")
    else:
        parts.append("all responses, empty ones included")
    return f"`{data}` (calosim Monte Carlo, {', '.join(parts)})"


def campaign_arguments(
    description: str, work_dir: str, max_minutes: float, results: Path, reuse_help: str
) -> argparse.ArgumentParser:
    """The options every campaign has; a script adds its own before parsing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=Path("/tmp/calosim-data/zn120k.h5"))
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / "runs" / work_dir)
    parser.add_argument("--seed", type=int, default=1, help="run and split seed")
    parser.add_argument("--max-minutes", type=float, default=max_minutes)
    parser.add_argument("--bench-n", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help=reuse_help)
    parser.add_argument("--results", type=Path, default=results)
    return parser


def start_campaign(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, Campaign, Path, Path]:
    """Parse the options, then prepare the campaign's split and floor: (args, campaign,
    test file, floor file)."""
    args = parser.parse_args(argv)
    args.data = args.data.resolve()
    campaign = Campaign(args.work_dir.resolve(), args.threads)
    test, floor = campaign.split_and_floor(args.data, args.seed)
    return args, campaign, test, floor


def machine_line(campaign: Campaign) -> str:
    """The results' line on the machine and its load, which every timing depends on."""
    return (
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other "
        f"developers' jobs (load average {campaign.load_at_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end); torch on {campaign.threads} thread(s) per "
        "process (OMP_NUM_THREADS), CPU only."
    )


def commands_section(campaign: Campaign) -> list[str]:
    """Markdown lines listing the commands the campaign ran."""
    return ["## Commands used", "", "```", *campaign.commands, "```", ""]


def write_results(campaign: Campaign, results: dict[str, Any], path: Path, text: str) -> None:
    """Write WORK/results.json and the results file, keeping the file's hand-written notes
    below NOTES_MARKER."""
    write_text_atomic(campaign.work_dir / "results.json", json.dumps(results, indent=2) + "\n")
    notes = ""
    if path.is_file():
        previous = path.read_text(encoding="utf-8")
        if NOTES_MARKER in previous:
            notes = previous[previous.index(NOTES_MARKER):]
    write_text_atomic(path, text + "\n" + (notes or NOTES_MARKER + "\n"))
    print(f"wrote {path}")
