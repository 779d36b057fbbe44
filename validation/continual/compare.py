"""Run several continual strategies on the same energy tasks and seed; print one table.

    .venv/bin/python validation/continual/compare.py --data /tmp/calosim-data/zn120k.h5 \
        --out runs/cl-compare multiband naive joint generative_replay ewc si

Each strategy runs configs/continual/<strategy>.yaml into OUT/<strategy> (same seed,
data and split for all; ``--set key=value`` overrides apply to every config). A finished
run is reused, an interrupted one resumed after its last finished task. The table
(Markdown) is printed and written to OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))

from calosim.continual.compare import (  # noqa: E402
    comparison_rows,
    comparison_table,
    matrix_table,
)
from calosim.continual.run import train_continual_from_config  # noqa: E402
from calosim.training.trainer import write_text_atomic  # noqa: E402


def _finished(run_dir: Path) -> bool:
    path = run_dir / "metrics.json"
    return path.is_file() and json.loads(path.read_text()).get("summary") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("strategies", nargs="+", help="names of configs/continual/*.yaml")
    parser.add_argument("--data", required=True, help="dataset file")
    parser.add_argument("--out", required=True, type=Path, help="directory of the runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override key.path=value, for every strategy")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--matrices", action="store_true",
                        help="also print each run's R matrix (mean per-channel W1)")
    args = parser.parse_args(argv)

    run_dirs = []
    for strategy in args.strategies:
        run_dir = args.out / strategy
        run_dirs.append(run_dir)
        if _finished(run_dir):
            print(f"{strategy}: finished run in {run_dir}, reused", flush=True)
            continue
        print(f"{strategy}: training into {run_dir}", flush=True)
        train_continual_from_config(
            REPOSITORY / "configs" / "continual" / f"{strategy}.yaml", data=args.data,
            out_dir=run_dir, seed=args.seed, overrides=args.overrides, device=args.device,
            resume=(run_dir / "checkpoints" / "last.pt").is_file(),
            progress=not args.no_progress,
        )
    table = comparison_table(comparison_rows(run_dirs))
    write_text_atomic(args.out / "table.md", table + "\n")
    print(table)
    if args.matrices:
        for strategy, run_dir in zip(args.strategies, run_dirs, strict=True):
            print(f"\n{strategy}\n\n{matrix_table(run_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
