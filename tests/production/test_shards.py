"""Sharded runs: shard layout, union = unsharded run, manifest, resume and corruption."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from production_helpers import N_PARTICLES

from calosim.data import read_dataset
from calosim.errors import CalosimError, DataFormatError
from calosim.production.shards import (
    ShardSpec,
    local_producer,
    merge_shards,
    prepare_run,
    read_manifest,
    run_sharded,
    shard_particle_rows,
    shard_path,
    shard_statuses,
)
from calosim.production.stream import simulate_rows
from calosim.simulators.base import RANDOM_BLOCK
from calosim.simulators.loading import load

SEED = 21
KEYS = ("particles", "pdg", "responses", "channels")


def read_h5(*paths: Path) -> dict[str, np.ndarray]:
    """The four datasets of canonical HDF5 files, concatenated in order."""
    parts: dict[str, list[np.ndarray]] = {key: [] for key in KEYS}
    for path in paths:
        with h5py.File(path, "r") as file:
            for key in KEYS:
                if key in file:
                    parts[key].append(file[key][:])
    return {key: np.concatenate(values) for key, values in parts.items() if values}


def assert_same_rows(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(actual) == set(expected) == set(KEYS)
    for key in KEYS:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


@pytest.fixture(scope="module")
def simulator(model_file):
    return load(model_file)


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, simulator, particle_file):
    """The reference: the plain (unsharded) run, for K = 1 and K = 3."""
    directory = tmp_path_factory.mktemp("unsharded")
    runs = {}
    for k in (1, 3):
        out = directory / f"k{k}.h5"
        simulate_rows(simulator, particle_file, out, seed=SEED, n_per_particle=k,
                      progress=False)
        runs[k] = read_h5(out)
    return runs


def plan_for(tmp_path, simulator, model_file, particle_file, n_shards=None, k=1, **options):
    return prepare_run(str(model_file), particle_file, tmp_path / "run.h5", simulator=simulator,
                       seed=options.pop("seed", SEED), n_shards=n_shards, n_per_particle=k,
                       **options)


class CountingProducer:
    """local_producer that remembers which shards it was asked to make."""

    def __init__(self, simulator) -> None:
        self.inner = local_producer(simulator, progress=False)
        self.asked: list[int] = []

    def __call__(self, plan, indices):
        self.asked.extend(indices)
        return self.inner(plan, indices)


# ----------------------------------------------------------------------------- layout


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/8", (3, 8)),
                                            (" 7 / 8 ", (7, 8))])
def test_shard_spec_parses_i_of_n(text, expected):
    spec = ShardSpec.parse(text)
    assert (spec.index, spec.count) == expected
    assert shard_path(Path("/d/run.h5"), spec) == Path(
        f"/d/run.shard-{expected[0]:04d}-of-{expected[1]:04d}.h5")


@pytest.mark.parametrize("text, needle", [("3/2", "0..1"), ("2/2", "0..1"),
                                          ("0/0", "at least 1"), ("x", "expected I/N"),
                                          ("-1/2", "expected I/N"), ("1/2/3", "expected I/N"),
                                          ("", "expected I/N")])
def test_bad_shard_syntax_is_one_line_error(text, needle):
    with pytest.raises(CalosimError, match=needle) as info:
        ShardSpec.parse(text)
    assert "\n" not in str(info.value)


@given(n=st.integers(0, 40 * RANDOM_BLOCK), count=st.integers(1, 50))
def test_shards_tile_the_file_in_whole_random_blocks(n, count):
    ranges = [shard_particle_rows(n, i, count) for i in range(count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (_, stop), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert stop == start
    assert all(start % RANDOM_BLOCK == 0 or start == n for start, _ in ranges)
    full = [-(-(stop - start) // RANDOM_BLOCK) for start, stop in ranges]
    assert max(full) - min(full) <= 1


# ------------------------------------------------------------------ union = unsharded


@pytest.mark.parametrize("n_shards, k", [(1, 1), (2, 1), (7, 1), (2, 3)])
def test_union_of_shards_and_merge_equal_the_unsharded_run(
    tmp_path, simulator, model_file, particle_file, unsharded, n_shards, k, monkeypatch
):
    plan = plan_for(tmp_path, simulator, model_file, particle_file, n_shards, k,
                    chunk_size=1024)
    summary = run_sharded(plan, producer=local_producer(simulator, progress=False),
                          merge=False, progress=False)
    assert summary.produced == tuple(range(n_shards)) and not summary.merged
    shard_files = [plan.shard_file(i) for i in range(n_shards)]
    non_empty = [p for i, p in enumerate(shard_files) if plan.rows(i)[1] > plan.rows(i)[0]]
    assert_same_rows(read_h5(*non_empty), unsharded[k])

    def decoded(*_: object) -> None:
        raise AssertionError("HDF5 shards of one run merge by copying their chunks")

    monkeypatch.setattr("calosim.production.shards.iter_data_chunks", decoded)
    assert merge_shards(plan, progress=False) == N_PARTICLES * k
    assert_same_rows(read_h5(plan.out), unsharded[k])
    assert not any(p.exists() for p in shard_files)  # removed once merged
    with h5py.File(plan.out) as file:
        assert int(file.attrs["seed"]) == SEED and int(file.attrs["n_shards"]) == n_shards
        assert "shard" not in file.attrs


def test_copies_of_a_particle_are_independent_draws_at_global_indices(
    simulator, gun_particles, unsharded
):
    particles = gun_particles[0]
    rows = unsharded[3]
    np.testing.assert_array_equal(rows["particles"], np.repeat(particles, 3, axis=0))
    # copy k of particle i is global index 3 i + k of the repeated list
    expected = simulator.simulate(np.repeat(particles, 3, axis=0), SEED)
    np.testing.assert_array_equal(rows["responses"], np.rint(expected))
    # the model does not round: stored channels are of the unrounded, distinct draws
    totals = rows["channels"].reshape(N_PARTICLES, 3, 5).sum(axis=2)
    assert (totals[:, 0] != totals[:, 1]).mean() > 0.99
    assert (totals[:, 1] != totals[:, 2]).mean() > 0.99


# ---------------------------------------------------------------------- resume, redo


def test_done_shards_are_skipped_when_resuming(tmp_path, simulator, model_file, particle_file,
                                               unsharded):
    plan = plan_for(tmp_path, simulator, model_file, particle_file, 3)
    first = CountingProducer(simulator)
    run_sharded(plan, producer=first, indices=[1], progress=False)
    assert first.asked == [1] and plan.shard_file(1).exists() and not plan.out.exists()

    resumed = plan_for(tmp_path, simulator, model_file, particle_file, seed=None)
    assert resumed == plan  # seed and N come from the manifest
    second = CountingProducer(simulator)
    summary = run_sharded(resumed, producer=second, progress=False)
    assert second.asked == [0, 2] and summary.skipped == (1,) and summary.merged
    assert_same_rows(read_h5(plan.out), unsharded[1])
    manifest = read_manifest(plan.manifest)
    assert manifest["merged"]["count"] == N_PARTICLES

    third = CountingProducer(simulator)
    again = run_sharded(resumed, producer=third, progress=False)
    assert third.asked == [] and again.merged and again.n_responses == 0


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_or_missing_shards_are_detected_and_redone(
    tmp_path, simulator, model_file, particle_file, unsharded
):
    plan = plan_for(tmp_path, simulator, model_file, particle_file, 4)
    run_sharded(plan, producer=local_producer(simulator, progress=False), merge=False,
                progress=False)
    damages = {1: (_truncate, "truncated"), 2: (_flip_byte, "checksum"),
               3: (Path.unlink, "missing")}
    for index, (damage, _) in damages.items():
        damage(plan.shard_file(index))
    statuses = shard_statuses(plan)
    assert [s.done for s in statuses] == [True, False, False, False]
    for index, (_, problem) in damages.items():
        assert problem in statuses[index].problem
    producer = CountingProducer(simulator)
    summary = run_sharded(plan, producer=producer, progress=False)
    assert producer.asked == [1, 2, 3] and sorted(summary.redone) == [1, 2, 3]
    assert_same_rows(read_h5(plan.out), unsharded[1])


def test_damaged_merged_output_is_rebuilt(tmp_path, simulator, model_file, particle_file,
                                          unsharded):
    plan = plan_for(tmp_path, simulator, model_file, particle_file, 2)
    run_sharded(plan, producer=local_producer(simulator, progress=False), progress=False)
    _flip_byte(plan.out)
    producer = CountingProducer(simulator)
    run_sharded(plan, producer=producer, progress=False)
    assert producer.asked == [0, 1]  # the shards were removed after the first merge
    assert_same_rows(read_h5(plan.out), unsharded[1])


def test_merge_refuses_while_shards_are_missing(tmp_path, simulator, model_file,
                                                particle_file):
    plan = plan_for(tmp_path, simulator, model_file, particle_file, 3)
    run_sharded(plan, producer=local_producer(simulator, progress=False), indices=[0],
                progress=False)
    with pytest.raises(CalosimError, match="shard 1/3 not done"):
        merge_shards(plan, progress=False)
    assert not plan.out.exists()


# ------------------------------------------------------------------- run identity


def test_manifest_of_another_run_is_refused_unless_restarted(
    tmp_path, simulator, model_file, particle_file
):
    plan = plan_for(tmp_path, simulator, model_file, particle_file, 2)
    run_sharded(plan, producer=local_producer(simulator, progress=False), indices=[0],
                progress=False)
    with pytest.raises(CalosimError, match="seed 21 \\(now 22\\).*--restart"):
        plan_for(tmp_path, simulator, model_file, particle_file, 2, seed=22)
    with pytest.raises(CalosimError, match="n_shards 2 \\(now 4\\)"):
        plan_for(tmp_path, simulator, model_file, particle_file, 4)
    mc = load("mc")
    with pytest.raises(CalosimError, match="another model"):
        prepare_run("mc", particle_file, plan.out, simulator=mc, seed=SEED, n_shards=2)

    fresh = plan_for(tmp_path, simulator, model_file, particle_file, 4, seed=22, restart=True)
    assert not plan.shard_file(0).exists()  # the old run's shard files went with it
    manifest = read_manifest(fresh.manifest)
    assert manifest["run"]["seed"] == 22 and manifest["shards"] == {}


def test_a_changed_particle_file_is_another_run(tmp_path, simulator, model_file,
                                                particle_file):
    copy = tmp_path / "particles.h5"
    copy.write_bytes(particle_file.read_bytes())
    plan_for(tmp_path, simulator, model_file, copy, 2)
    with h5py.File(copy, "r+") as file:
        file["particles"][0, 0] += 1.0
    with pytest.raises(CalosimError, match="another particle file"):
        plan_for(tmp_path, simulator, model_file, copy, 2)


def test_independent_jobs_need_a_seed_and_a_readable_manifest(
    tmp_path, simulator, model_file, particle_file
):
    with pytest.raises(CalosimError, match="--seed"):
        plan_for(tmp_path, simulator, model_file, particle_file, 2, seed=None, draw_seed=False)
    plan = plan_for(tmp_path, simulator, model_file, particle_file, 2)
    plan.manifest.write_text("{ not json")
    with pytest.raises(DataFormatError, match="not a calosim shard manifest.*--restart"):
        plan_for(tmp_path, simulator, model_file, particle_file, 2)
    plan_for(tmp_path, simulator, model_file, particle_file, 2, restart=True)
    assert read_manifest(plan.manifest)["run"]["seed"] == SEED


def test_sharded_output_is_hdf5_or_root(tmp_path, simulator, model_file, particle_file):
    with pytest.raises(CalosimError, match="HDF5 .* or ROOT"):
        prepare_run(str(model_file), particle_file, tmp_path / "run.npz", simulator=simulator,
                    seed=1, n_shards=2)


def test_a_name_too_long_for_the_shard_files_is_refused_first(tmp_path, simulator, model_file,
                                                              particle_file):
    out = tmp_path / ("z" * 245 + ".h5")  # legal, but its manifest's lock name would not be
    with pytest.raises(CalosimError, match=r"name too long for a sharded run, .*at most 235 bytes"):
        prepare_run(str(model_file), particle_file, out, simulator=simulator, seed=1,
                    n_shards=2)
    assert list(tmp_path.iterdir()) == []


def test_root_shards_merge_into_the_unsharded_root_file(tmp_path, simulator, model_file,
                                                        particle_file):
    reference = tmp_path / "plain.root"
    simulate_rows(simulator, particle_file, reference, seed=SEED, progress=False)
    plan = prepare_run(str(model_file), particle_file, tmp_path / "run.root",
                       simulator=simulator, seed=SEED, n_shards=2)
    run_sharded(plan, producer=local_producer(simulator, progress=False), progress=False)
    expected, merged = read_dataset(reference), read_dataset(plan.out)
    np.testing.assert_array_equal(merged.particles, expected.particles)
    np.testing.assert_array_equal(merged.pdg, expected.pdg)
    np.testing.assert_array_equal(merged.responses, expected.responses)
    import uproot

    with uproot.open(reference) as a, uproot.open(plan.out) as b:
        np.testing.assert_array_equal(b["zdc"]["channels"].array(library="np"),
                                      a["zdc"]["channels"].array(library="np"))
