"""Image models side by side: FID, precision, recall and seconds, beside the real-data floor.

Each run directory (of `calosim train configs/images/...`) gives its model.pt and its
training time (metrics.json). Every model generates as many images as the reference set
holds, for the reference set's labels (so class-conditional models are scored on the
training class mix); the reference set is the training images the floor uses too, drawn
with the same seed, so the floor row (real test images against them) is the bound.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from calosim.data.images import load_image_benchmark
from calosim.errors import CalosimError
from calosim.images.generator import load_image_generator
from calosim.images.train import ImageDataConfig, ImageEvaluationConfig
from calosim.metrics.images import image_floor, image_scores
from calosim.models.base import config_from_dict
from calosim.training.run import parse_yaml


def _run_files(run_dir: Path) -> tuple[ImageDataConfig, ImageEvaluationConfig, dict[str, Any]]:
    """The data and evaluation sections and the metrics of an image run directory."""
    for name in ("config.yaml", "model.pt", "metrics.json"):
        if not (run_dir / name).is_file():
            raise CalosimError(f"{run_dir}: not a finished image run (no {name})")
    try:
        config = parse_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"))
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CalosimError(f"{run_dir}: unreadable run files ({type(error).__name__})") from None
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        raise CalosimError(f"{run_dir}: not an image run (its config has no data: section)")
    return (config_from_dict(ImageDataConfig, config["data"], "data"),
            config_from_dict(ImageEvaluationConfig, config.get("evaluation"), "evaluation"),
            metrics)


def benchmark_runs(
    run_dirs: Sequence[str | Path], *, samples: int | None = None, seed: int = 0,
    device: str = "cpu",
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Scores of each run's model and of the floor, as a JSON-friendly dict. ``samples``
    and k default to the first run's ``evaluation:`` section."""
    from calosim.metrics.classifier import load_or_train_classifier

    if not run_dirs:
        raise CalosimError("give at least one run directory")
    runs = [(Path(d), *_run_files(Path(d))) for d in run_dirs]
    data, evaluation = runs[0][1], runs[0][2]
    k = evaluation.k
    for run_dir, other, _, _ in runs[1:]:
        if (other.benchmark, other.digits_size, other.split_seed) != (
            data.benchmark, data.digits_size, data.split_seed
        ):
            raise CalosimError(f"{run_dir}: trained on {other.benchmark}, not on "
                               f"{data.benchmark} like {runs[0][0]}; bench one benchmark at a time")
    splits = load_image_benchmark(data.benchmark, data_dir=data.data_dir,
                                  digits_size=data.digits_size, seed=data.split_seed)
    classifier, _ = load_or_train_classifier(splits.train, announce=announce)
    n = min(samples or evaluation.samples, len(splits.train), len(splits.test))
    reference = splits.train.sample(n, seed)
    rows = []
    for run_dir, _, _, metrics in runs:
        generator = load_image_generator(run_dir / "model.pt", device=device)
        started = time.perf_counter()
        images = generator.generate(reference.labels, seed)
        seconds = time.perf_counter() - started
        scores = image_scores(classifier, reference.images, images, k)
        rows.append({
            "label": run_dir.name, "run_dir": str(run_dir), "model": generator.model_name,
            "conditional": generator.conditional, "fid": scores.fid,
            "precision": scores.precision, "recall": scores.recall,
            "train_seconds": metrics.get("train_seconds"), "generation_seconds": seconds,
            "epochs_run": metrics.get("epochs_run"),
        })
    floor = image_floor(splits, n_samples=n, seed=seed, k=k)
    return {"dataset": data.benchmark, "samples": n, "k": k, "seed": seed, "models": rows,
            "floor": {key: floor[key] for key in ("fid", "precision", "recall",
                                                  "classifier_accuracy")}}


def format_table(result: dict[str, Any]) -> str:
    """The benchmark as a fixed-width text table, floor last."""
    header = (f"{'model':<28} {'FID':>9} {'precision':>9} {'recall':>7} "
              f"{'train s':>8} {'gen s':>7}")
    lines = [f"{result['dataset']}: {result['samples']} generated vs {result['samples']} "
             f"training images, k = {result['k']}", header, "-" * len(header)]
    for row in result["models"]:
        train = row["train_seconds"]
        train_text = f"{train:8.0f}" if isinstance(train, int | float) else f"{'-':>8}"
        lines.append(f"{row['label']:<28} {row['fid']:9.3f} {row['precision']:9.3f} "
                     f"{row['recall']:7.3f} {train_text} {row['generation_seconds']:7.1f}")
    floor = result["floor"]
    lines.append(f"{'floor (real test vs train)':<28} {floor['fid']:9.3f} "
                 f"{floor['precision']:9.3f} {floor['recall']:7.3f} {'-':>8} {'-':>7}")
    return "\n".join(lines)
