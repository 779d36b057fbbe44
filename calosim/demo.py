"""`make demo`: the whole calosim workflow on a small dataset, end to end.

Simulate ZN responses with the Monte Carlo, split them, simulate the test particles a
second time (the noise floor), train the fastest learned model for a few minutes,
generate the test particles with it, and validate it beside the floor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

FASTEST_MODEL_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "zdc" / "e2e_sae.yaml"


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-run"))
    parser.add_argument("--n", type=int, default=20000, help="responses to simulate")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from calosim.data import read_dataset, split_indices, write_dataset
    from calosim.production.stream import simulate_file, simulate_gun
    from calosim.report.validation import format_table, validate_files
    from calosim.simulators.loading import load

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    mc = load("mc")

    _step(f"simulating {args.n} ZN responses with the Monte Carlo (>= 10 photons)")
    data_path = out / "zn.h5"
    simulate_gun(mc, args.n, data_path, seed=args.seed, min_photons=10)

    _step("held-out test particles and their second, independent simulation (noise floor)")
    dataset = read_dataset(data_path)
    # The trainer splits with the run's seed: the same seed gives its held-out particles.
    test_rows = np.sort(split_indices(len(dataset), args.seed, (0.8, 0.1, 0.1))["test"])
    test_path, floor_path = out / "test.h5", out / "test_floor.h5"
    test_attrs = {**dataset.attrs, "creator": "calosim.demo (test split of zn.h5)"}
    write_dataset(test_path, dataset.subset(test_rows), attrs=test_attrs)
    simulate_file(mc, test_path, floor_path, seed=args.seed + 1)

    generated_path = floor_path
    if FASTEST_MODEL_CONFIG.is_file():
        from calosim.training.run import train_from_config

        _step(f"training the e2e Sinkhorn autoencoder for at most {args.minutes:g} minutes")
        result = train_from_config(
            FASTEST_MODEL_CONFIG, data=data_path, out_dir=out / "sae", seed=args.seed,
            max_minutes=args.minutes,
        )
        _step("generating the test particles with the trained model")
        generated_path = out / "generated.h5"
        simulate_file(load(result.model_path), test_path, generated_path, seed=args.seed + 2)
    else:
        print("no learned model available yet: validating the Monte Carlo against itself")

    _step("validation: generated vs Monte Carlo, beside the Monte Carlo noise floor")
    report_dir = out / "validation"
    result = validate_files(test_path, generated_path, floor=floor_path, out_dir=report_dir)
    print(format_table(result))
    print(f"\nreport: {(report_dir / 'report.html').resolve()} (plots and metrics.json beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
