"""Validate the diffusion simulators on the ZN Monte Carlo: latent diffusion fidelity and
speed per sampler and number of steps, and the sampling cost of the pixel-space models.

Every data step is a `calosim` command, recorded in the results so it can be redone:

    data      calosim simulate --n 120000 --seed 1 --min-photons 10 --out DATA
    split     calosim split DATA --out-dir WORK/split --seed SEED  (the trainer's split)
    floor     calosim simulate --particles WORK/split/test.h5 --seed 2 --out WORK/floor.h5
    SAE       calosim train configs/zdc/e2e_sae.yaml --data DATA --out WORK/e2e_sae
                  --seed SEED --max-minutes M model.shape_loss=photon_likelihood
                                                       (unless --autoencoder is given)
    latent    calosim train configs/zdc/latent_diffusion.yaml model.autoencoder=SAE
                  --data DATA --out WORK/latent_diffusion --seed SEED --max-minutes M
    per S, K  WORK/latent_diffusion/S_K.pt: the model file sampling with sampler S (ddim,
                  dpm_solver) in K steps (``model.set_sampling(...)``, then saved again)
              calosim generate --model S_K.pt --particles WORK/split/test.h5
                  --out WORK/latent_diffusion/generated_S_K.h5 --seed 3
              calosim validate --reference WORK/split/test.h5 --generated ...
                  --floor WORK/floor.h5 --json
              calosim bench --model S_K.pt --n 100000 --threads T --json
    spread    the last sampler at --spread-steps over generation seeds 3-7, beside a second
              Monte Carlo with the same seeds (in-process; see campaign.seed_spread)

The pixel-space models (ddpm, daed, joint_diffusion) are GPU-class: here only their
sampling time per response is measured, at their config's size, for each step count.
Run from the repository root:
    .venv/bin/python validation/zdc_diffusion/run_diffusion.py --autoencoder SAE.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

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
    reconstruct_counts,
    resaved,
    seed_spread,
    seed_spread_line,
    start_campaign,
    write_results,
)

PIXEL_MODELS = ("ddpm", "daed", "joint_diffusion")


def sampling(sampler: str, steps: int) -> dict[str, Any]:
    return {"sampler": sampler, "sampling_steps": steps, "eta": 0.0}


def evaluate_latent(
    campaign: Campaign, args: argparse.Namespace, autoencoder: Path, test: Path, floor: Path
) -> dict[str, Any]:
    """Train the latent model (unless --reuse finds one), then per step count: generate,
    validate, benchmark."""
    run_dir = campaign.work_dir / "latent_diffusion"
    model_file = run_dir / "model.pt"
    if args.reuse and model_file.is_file():
        campaign.note(f"latent_diffusion: reused {campaign.shown(model_file)} of an earlier "
                      "run, not retrained")
    else:
        campaign.run("train", REPOSITORY / "configs" / "zdc" / "latent_diffusion.yaml",
                     f"model.autoencoder={autoencoder}", "--data", args.data, "--out", run_dir,
                     "--seed", str(args.seed), "--max-minutes", str(args.max_minutes),
                     "--no-progress")
    per_steps: dict[str, Any] = {}
    for sampler in args.samplers:
        for steps in args.steps:
            variant = run_dir / f"{sampler}_{steps}.pt"
            resaved(model_file, variant, args.rounding, **sampling(sampler, steps))
            campaign.note(f"{variant.name}: model.pt re-saved with set_sampling(sampler="
                          f"{sampler!r}, sampling_steps={steps}), rounding {args.rounding}")
            per_steps[f"{sampler} {steps}"] = result = campaign.evaluate(
                variant, run_dir / f"generated_{sampler}_{steps}.h5", test, floor, args.bench_n,
                args.bench_threads,
            )
            validation, bench = result["validation"], result["bench"]
            metrics = validation["metrics"]
            print(f"{sampler} {steps} steps: W1 {metrics['wasserstein']['mean']:.2f}  MAE "
                  f"{metrics['mae']:.2f}  {bench['responses_per_second']:,.0f} responses/s",
                  flush=True)
    if args.spread_steps:
        sampler, steps = args.samplers[-1], args.spread_steps
        variant = run_dir / f"{sampler}_{steps}.pt"
        resaved(model_file, variant, args.rounding, **sampling(sampler, steps))
        per_steps["seed_spread"] = {"sampler": sampler, "steps": steps,
                                    **seed_spread(variant, test)}
    training = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {"training": training, "steps": per_steps}


def autoencoder_reconstruction(autoencoder: Path, test: Path, floor: Path,
                               rounding: str) -> dict[str, Any]:
    """Fidelity of the autoencoder's own encode -> decode on the test responses: the best
    a model in its latent space can reach."""
    from calosim.data import read_dataset
    from calosim.metrics import channel_mae, channel_wasserstein
    from calosim.training.checkpoint import load_simulator

    model = load_simulator(autoencoder).model.eval()
    real = read_dataset(test).responses[:]
    reconstructed = reconstruct_counts(model, real, rounding, GENERATION_SEED)
    second = read_dataset(floor).responses[:]
    return {
        "w1": float(channel_wasserstein(real, reconstructed).mean),
        "mae": float(channel_mae(real, reconstructed)),
        "floor_w1": float(channel_wasserstein(real, second).mean),
        "floor_mae": float(channel_mae(real, second)),
    }


def pixel_sampling_speed(steps: Sequence[int], batch: int, threads: int) -> dict[str, Any]:
    """Seconds per response of each pixel model (config size, untrained: the cost does not
    depend on the weights) for each DDIM step count, on this machine's CPU."""
    from calosim.models.registry import build_model
    from calosim.training.run import load_config

    torch.set_num_threads(threads)
    speeds: dict[str, Any] = {}
    for name in PIXEL_MODELS:
        section = dict(load_config(REPOSITORY / "configs" / "zdc" / f"{name}.yaml")["model"])
        section.pop("name")
        model = build_model(name, section).eval()
        noise = torch.randn(batch, *model.noise_shape, generator=torch.Generator().manual_seed(0))
        conditions = torch.randn(batch, 9, generator=torch.Generator().manual_seed(1))
        if name == "joint_diffusion":
            model.fit_classes(conditions)
        timings = {}
        for count in steps:
            model.set_sampling(sampler="ddim", sampling_steps=count)
            started = time.perf_counter()
            with torch.inference_mode():
                model.generate(noise, conditions)
            timings[str(count)] = (time.perf_counter() - started) / batch
        speeds[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                        "seconds_per_response": timings}
        print(f"{name}: " + ", ".join(f"{k} steps {v * 1e3:.0f} ms" for k, v in timings.items()),
              flush=True)
    return speeds


def _ratio(value: float, floor: float) -> str:
    return f"{value:.2f} ({value / floor:.2f}x)"


def results_markdown(results: dict[str, Any], campaign: Campaign,
                     args: argparse.Namespace) -> str:
    latent = results["latent_diffusion"]
    first = next(iter(latent["steps"].values()))["validation"]["floor"]
    floor_w1, floor_mae = first["wasserstein"]["mean"], first["mae"]
    training = latent["training"]
    recon = results["autoencoder_reconstruction"]
    lines = [
        "# Diffusion simulators of the ZN: validation",
        "",
        f"Data: {data_description(args.data)}; test split of seed "
        f"{args.seed} ({first['n_reference']} responses, never seen in training). W1: mean over "
        "the 5 channels of the 1-D Wasserstein distance on photon counts; MAE: channel MAE per "
        "test particle; (Nx): ratio to the noise floor, a second Monte Carlo of the same "
        f"particles (W1 {floor_w1:.2f}, MAE {floor_mae:.2f}). Target: W1 and MAE <= 1.3x.",
        "",
        "## Latent diffusion: fidelity and speed per sampler and number of steps",
        "",
        f"Autoencoder: `{results['autoencoder']}`. Training: {training['epochs_run']} epochs, "
        f"{training['train_seconds'] / 60:.1f} min, stop: {training['stop_reason']}.",
        "",
        "Sampler ddim: DDIM, eta 0; dpm_solver: DPM-Solver++(2M), the same steps, second order.",
        "",
        "| sampler, steps | W1 (x floor) | MAE (x floor) | responses/s | ms/response |",
        "|---|---|---|---|---|",
    ]
    spread = latent["steps"].get("seed_spread")
    for steps, result in latent["steps"].items():
        if steps == "seed_spread":
            continue
        metrics, bench = result["validation"]["metrics"], result["bench"]
        lines.append(f"| {steps} | {_ratio(metrics['wasserstein']['mean'], floor_w1)} | "
                     f"{_ratio(metrics['mae'], floor_mae)} | "
                     f"{bench['responses_per_second']:,.0f} | {bench['ms_per_response']:.3f} |")
    own = results["autoencoder_generation"]
    own_metrics = own["validation"]["metrics"]
    lines += [
        "| the autoencoder alone (its noise generator + decoder) | "
        f"{_ratio(own_metrics['wasserstein']['mean'], floor_w1)} | "
        f"{_ratio(own_metrics['mae'], floor_mae)} | "
        f"{own['bench']['responses_per_second']:,.0f} | {own['bench']['ms_per_response']:.3f} |",
        f"| autoencoder encode -> decode of the real responses, {args.rounding} rounding "
        "(the decoder's own error) | "
        f"{_ratio(recon['w1'], floor_w1)} | {_ratio(recon['mae'], floor_mae)} | | |",
        "",
    ]
    if spread is not None:
        lines += [
            f"Over generation seeds {', '.join(map(str, spread['seeds']))} (the table above: "
            f"seed {GENERATION_SEED} against the seed-{FLOOR_SEED} floor), against a second "
            "Monte Carlo with the same seeds:",
            "",
            *SEED_SPREAD_HEADER,
            seed_spread_line(f"latent diffusion, {spread['sampler']} {spread['steps']} steps",
                             spread),
            "",
        ]
    lines += [
        "## Pixel-space models: CPU sampling time per response",
        "",
        f"Config-size models (configs/zdc/*.yaml), batch {args.pixel_batch}, "
        f"{args.bench_threads} torch thread(s); milliseconds per response.",
        "",
        "| model | parameters | " + " | ".join(f"{s} steps" for s in args.pixel_steps) + " |",
        "|---|---|" + "---|" * len(args.pixel_steps),
    ]
    for name, speed in results["pixel_speed"].items():
        cells = [f"{speed['seconds_per_response'][str(s)] * 1e3:,.0f}" for s in args.pixel_steps]
        lines.append(f"| {name} | {speed['parameters']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Conditions",
        "",
        machine_line(campaign),
        f"- responses/s: `calosim bench --n {args.bench_n} --threads {args.bench_threads}` "
        "(default particle gun, batches of 8192, rounding included) on that loaded machine.",
        "",
        *commands_section(campaign),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = campaign_arguments(
        __doc__.splitlines()[0], "zdc_diffusion", 30.0, HERE / "results.md",
        "evaluate an existing WORK/latent_diffusion/model.pt",
    )
    parser.add_argument("--autoencoder", type=Path, default=None,
                        help="e2e SAE model file (default: train one in WORK/e2e_sae)")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 25, 50])
    parser.add_argument("--samplers", nargs="+", choices=["ddim", "dpm_solver"],
                        default=["ddim", "dpm_solver"])
    parser.add_argument("--spread-steps", type=int, default=25,
                        help="steps of the last sampler evaluated over 5 seeds (0: skip)")
    parser.add_argument("--pixel-steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--pixel-batch", type=int, default=2)
    # nearest rounding of sparse fractional pixels loses photons (2-4 % of a channel)
    parser.add_argument("--rounding", choices=["nearest", "stochastic"], default="stochastic")
    # 1: on a shared machine a second torch thread spins against other jobs (10x slower here)
    parser.add_argument("--bench-threads", type=int, default=1)
    args, campaign, test, floor = start_campaign(parser, argv)
    autoencoder = args.autoencoder
    if autoencoder is None:
        autoencoder = campaign.work_dir / "e2e_sae" / "model.pt"
        if not (args.reuse and autoencoder.is_file()):
            campaign.run("train", REPOSITORY / "configs" / "zdc" / "e2e_sae.yaml", "--data",
                         args.data, "--out", autoencoder.parent, "--seed", str(args.seed),
                         "--max-minutes", str(args.max_minutes), "--no-progress",
                         "model.shape_loss=photon_likelihood")
    autoencoder = autoencoder.resolve()
    results: dict[str, Any] = {"autoencoder": str(autoencoder)}
    results["autoencoder_reconstruction"] = autoencoder_reconstruction(autoencoder, test, floor,
                                                                       args.rounding)
    # the autoencoder as a simulator on its own (its latent generator), in the same benchmark
    own = resaved(autoencoder, campaign.work_dir / "autoencoder.pt", args.rounding)
    campaign.note(f"autoencoder.pt: {autoencoder} re-saved with rounding {args.rounding}")
    results["autoencoder_generation"] = campaign.evaluate(
        own, campaign.work_dir / "autoencoder_generated.h5", test, floor, args.bench_n,
        args.bench_threads,
    )
    results["latent_diffusion"] = evaluate_latent(campaign, args, autoencoder, test, floor)
    results["pixel_speed"] = pixel_sampling_speed(args.pixel_steps, args.pixel_batch,
                                                  args.bench_threads)
    write_results(campaign, results, args.results, results_markdown(results, campaign, args))


if __name__ == "__main__":
    main()
