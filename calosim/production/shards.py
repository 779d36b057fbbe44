"""Sharded, resumable batch generation: a run cut into N shards, a manifest of the done ones.

A run is (model, particle file, seed, K responses per particle). It is cut into N shards
of whole random blocks (RANDOM_BLOCK particles): shard i of N holds particle blocks
[i * B // N, (i + 1) * B // N) of the file's B blocks. A particle's responses depend only
on the seed and its global index (see calosim.production.stream), so the N shard files,
concatenated in order, hold exactly the rows of the unsharded run, whatever N is.

Files, beside the output OUT (``run.h5``):

- shard i of N: ``run.shard-000i-of-000N.h5`` (same format as OUT: HDF5 or ROOT),
  written atomically;
- the manifest ``run.h5.manifest.json``, rewritten atomically under a file lock (batch
  array jobs update it concurrently): the run's identity (sha256 of the model file and
  of the particle file, particle count, seed, K, N) and, per shard done, its file, row
  ranges, row count, sha256 and size; after a merge, the merged file's record.

A killed job resumes: shards whose record matches their file (size, checksum, row count)
are skipped; missing, truncated or corrupt shard files are redone. A merge streams the
shards into OUT (atomically) and, unless asked to keep them, removes the shard files.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from calosim._version import __version__
from calosim.data import (
    ResponseWriter,
    atomic_output,
    count_particles,
    iter_data_chunks,
    npz_pair_paths,
    open_data_file,
    output_format,
)
from calosim.data.formats import ROOT_TREE
from calosim.data.formats.atomic import NAME_MAX
from calosim.errors import CalosimError, DataFormatError
from calosim.production.stream import DEFAULT_CHUNK, simulate_rows
from calosim.simulators.base import RANDOM_BLOCK, DetectorSimulator, fresh_seed

SHARD_FORMATS = ("h5", "root")
MANIFEST_FORMAT = "calosim-shard-manifest"
MANIFEST_VERSION = 1
# Default shard size when N is not given: 128 random blocks of responses (131072), small
# enough to lose little when a job is killed, large enough that per-shard costs vanish.
DEFAULT_SHARD_BLOCKS = 128
# The keys of a manifest's "run" that must match for a shard to be reused.
IDENTITY_KEYS = ("model_sha256", "particles_sha256", "n_particles", "seed", "n_per_particle",
                 "n_shards")
# File attributes that describe one shard, not the merged run.
_SHARD_ATTRS = ("shard", "particle_rows")
_HASH_BLOCK = 1 << 20


# ------------------------------------------------------------------------ shard layout


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (0 .. count - 1) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"I/N"`` -> ShardSpec(I, N), with a one-line CalosimError for anything else."""
        parts = text.strip().split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise CalosimError(f"shard {text!r}: expected I/N, e.g. 3/8 (shard I of N, "
                               "I counted from 0)")
        index, count = (int(p) for p in parts)
        if count < 1:
            raise CalosimError(f"shard {text!r}: the number of shards N must be at least 1")
        if index >= count:
            raise CalosimError(f"shard {text!r}: the shard index I must lie in 0..{count - 1}")
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"shard-{self.index:04d}-of-{self.count:04d}"


def shard_particle_rows(n_particles: int, index: int, count: int) -> tuple[int, int]:
    """Particle rows [start, stop) of shard ``index`` of ``count``: whole random blocks,
    shard sizes differing by at most one block (shards past the data are empty)."""
    n_blocks = -(-n_particles // RANDOM_BLOCK)
    first, last = index * n_blocks // count, (index + 1) * n_blocks // count
    return min(n_particles, first * RANDOM_BLOCK), min(n_particles, last * RANDOM_BLOCK)


def default_shard_count(n_particles: int, n_per_particle: int = 1) -> int:
    """N for a run that did not choose one: shards of about DEFAULT_SHARD_BLOCKS blocks
    of responses, never more shards than particle blocks."""
    n_blocks = -(-n_particles // RANDOM_BLOCK)
    wanted = -(-n_blocks * n_per_particle // DEFAULT_SHARD_BLOCKS)
    return max(1, min(n_blocks, wanted))


def shard_path(out: str | os.PathLike[str], spec: ShardSpec) -> Path:
    """``run.h5`` -> ``run.shard-0003-of-0008.h5`` (same directory, same suffix)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{spec.label}{out.suffix}")


def manifest_path(out: str | os.PathLike[str]) -> Path:
    """The manifest of the sharded run writing ``out``: ``run.h5.manifest.json``."""
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def file_sha256(*paths: Path) -> str:
    """sha256 over the bytes of ``paths`` in order, read in blocks (flat memory)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def _input_files(path: Path) -> list[Path]:
    """The files a particle input consists of (an npz pair has two)."""
    if path.is_file():
        return [path]
    pair = [p for p in npz_pair_paths(path) if p.is_file()]
    if not pair:
        raise DataFormatError(f"{path}: no such file")
    return pair


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ShardPlan:
    """Everything needed to produce any shard of a run; picklable, so Dask workers get it.

    Paths are absolute (workers may run elsewhere on a shared file system). ``model`` is
    a model file or a built-in simulator name.
    """

    model: str
    particles: Path
    out: Path
    seed: int
    n_shards: int
    n_particles: int
    n_per_particle: int = 1
    chunk_size: int = DEFAULT_CHUNK
    device: str = "cpu"
    creator: str | None = None
    torch_threads: int | None = None

    def spec(self, index: int) -> ShardSpec:
        return ShardSpec(index, self.n_shards)

    def particle_rows(self, index: int) -> tuple[int, int]:
        return shard_particle_rows(self.n_particles, index, self.n_shards)

    def rows(self, index: int) -> tuple[int, int]:
        """Output rows (global indices) of shard ``index``."""
        start, stop = self.particle_rows(index)
        return start * self.n_per_particle, stop * self.n_per_particle

    def shard_file(self, index: int) -> Path:
        return shard_path(self.out, self.spec(index))

    @property
    def manifest(self) -> Path:
        return manifest_path(self.out)


@dataclass(frozen=True)
class ShardRecord:
    """A produced shard file as the manifest lists it (``file`` is a name beside OUT)."""

    index: int
    file: str
    particle_rows: tuple[int, int]
    rows: tuple[int, int]
    count: int
    sha256: str
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "particle_rows": list(self.particle_rows),
                "rows": list(self.rows)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardRecord:
        return cls(index=int(data["index"]), file=str(data["file"]),
                   particle_rows=(int(data["particle_rows"][0]), int(data["particle_rows"][1])),
                   rows=(int(data["rows"][0]), int(data["rows"][1])), count=int(data["count"]),
                   sha256=str(data["sha256"]), bytes=int(data["bytes"]),
                   seconds=float(data["seconds"]))


# ------------------------------------------------------------------------ the manifest


@contextmanager
def _locked(manifest: Path) -> Iterator[None]:
    """Hold an exclusive lock on the manifest's lock file (batch jobs share a manifest)."""
    lock = manifest.with_name(f".{manifest.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path`` (None if there is none); DataFormatError if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise DataFormatError(f"{path}: not a calosim shard manifest ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DataFormatError(f"{path}: not a calosim shard manifest")
    if not isinstance(data.get("run"), dict) or not isinstance(data.get("shards"), dict):
        raise DataFormatError(f"{path}: corrupt shard manifest (no run or shards)")
    return data


def _write_manifest(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path) as temp:
        temp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _fingerprints(model: str, particles: Path) -> dict[str, str]:
    """sha256 of the model file (a built-in simulator: its name) and of the particle file."""
    return {
        "model_sha256": file_sha256(Path(model)) if Path(model).is_file() else model.lower(),
        "particles_sha256": file_sha256(*_input_files(particles)),
    }


def _run_description(plan: ShardPlan, simulator_name: str,
                     fingerprints: dict[str, str]) -> dict[str, Any]:
    return {
        "model": plan.model,
        "simulator": simulator_name,
        "particles": str(plan.particles),
        **fingerprints,
        "n_particles": plan.n_particles,
        "seed": plan.seed,
        "n_per_particle": plan.n_per_particle,
        "n_shards": plan.n_shards,
        "calosim_version": __version__,
    }


def _identity(run: dict[str, Any]) -> dict[str, Any]:
    return {key: run.get(key) for key in IDENTITY_KEYS}


def _mismatch(manifest: Path, recorded: dict[str, Any], wanted: dict[str, Any]) -> str:
    key = next(k for k in IDENTITY_KEYS if recorded.get(k) != wanted.get(k))
    what = {"model_sha256": "another model", "particles_sha256": "another particle file"}
    detail = what.get(key, f"{key} {recorded.get(key)} (now {wanted.get(key)})")
    return (f"{manifest}: belongs to a run with {detail}; use another --out, or --restart "
            "to start this run over")


def _new_manifest(plan: ShardPlan, run: dict[str, Any]) -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
            "output": plan.out.name, "run": run, "shards": {}, "merged": None}


def _check_sibling_names(out: Path) -> None:
    """Refuse an output name too long for the files a sharded run writes beside it."""
    widest = ShardSpec(0, 99_999)
    siblings = [f".{manifest_path(out).name}.lock", shard_path(out, widest).name]
    longest = max(len(name.encode()) for name in siblings)
    if longest > NAME_MAX:
        room = NAME_MAX - (longest - len(out.name.encode()))
        raise CalosimError(f"{out}: name too long for a sharded run, whose manifest and shard "
                           f"files extend it (at most {room} bytes; this one has "
                           f"{len(out.name.encode())})")


def prepare_run(
    model: str,
    particles: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    simulator: DetectorSimulator,
    seed: int | None = None,
    n_shards: int | None = None,
    n_per_particle: int = 1,
    chunk_size: int = DEFAULT_CHUNK,
    device: str = "cpu",
    creator: str | None = None,
    restart: bool = False,
    draw_seed: bool = True,
) -> ShardPlan:
    """The plan of a sharded run, with its manifest created or checked against it.

    ``seed`` and ``n_shards`` None take the existing manifest's values (resuming), else a
    fresh seed (only if ``draw_seed``; independent batch jobs must share one) and
    ``default_shard_count``. An existing manifest of another run (model, particles, seed,
    K or N differ) is an error unless ``restart``, which replaces it and removes the
    shard files it lists. ``simulator`` is ``model`` loaded (its name is recorded).
    """
    out = Path(out).absolute()
    if output_format(out) not in SHARD_FORMATS:
        raise CalosimError(f"{out}: sharded output must be HDF5 (.h5) or ROOT (.root)")
    _check_sibling_names(out)
    if n_per_particle < 1:
        raise CalosimError(f"n_per_particle must be at least 1, got {n_per_particle}")
    particles = Path(particles).absolute()
    model_path = Path(model)
    model = str(model_path.absolute()) if model_path.is_file() else model
    n_particles = count_particles(particles)
    fingerprints = _fingerprints(model, particles)  # hashed before locking: it takes a while
    manifest_file = manifest_path(out)
    with _locked(manifest_file):
        manifest = _readable(manifest_file) if restart else _existing(manifest_file)
        recorded = manifest["run"] if manifest else {}
        if seed is None:
            seed = recorded.get("seed")
            if seed is None and not draw_seed:
                raise CalosimError("give --seed: all shards of a run must share one seed")
            seed = fresh_seed() if seed is None else int(seed)
        if n_shards is None:
            n_shards = int(recorded.get("n_shards") or
                           default_shard_count(n_particles, n_per_particle))
        plan = ShardPlan(model=model, particles=particles, out=out, seed=int(seed),
                         n_shards=n_shards, n_particles=n_particles,
                         n_per_particle=n_per_particle, chunk_size=chunk_size, device=device,
                         creator=creator)
        run = _run_description(plan, simulator.name, fingerprints)
        if manifest is not None and _identity(recorded) == _identity(run):
            return plan
        if manifest is not None and not restart:
            raise CalosimError(_mismatch(manifest_file, recorded, run))
        if manifest is not None:
            _remove_listed_files(out.parent, manifest)
        _write_manifest(manifest_file, _new_manifest(plan, run))
    return plan


def _existing(path: Path) -> dict[str, Any] | None:
    """The manifest, None when absent; a broken one is an error that suggests --restart."""
    try:
        return read_manifest(path)
    except DataFormatError as error:
        raise DataFormatError(f"{error}; --restart replaces it") from None


def _readable(path: Path) -> dict[str, Any] | None:
    """The manifest, or None when it is absent or unreadable (a restart replaces it)."""
    try:
        return read_manifest(path)
    except DataFormatError:
        return None


def _remove_listed_files(directory: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["shards"].values():
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            (directory / Path(entry["file"]).name).unlink(missing_ok=True)


def _load_manifest(plan: ShardPlan) -> dict[str, Any]:
    manifest = read_manifest(plan.manifest)
    if manifest is None:
        raise CalosimError(f"{plan.manifest}: the run's manifest has disappeared")
    wanted = {"seed": plan.seed, "n_particles": plan.n_particles,
              "n_per_particle": plan.n_per_particle, "n_shards": plan.n_shards}
    if any(manifest["run"].get(key) != value for key, value in wanted.items()):
        raise CalosimError(f"{plan.manifest}: was replaced by another run while this one ran")
    return manifest


def record_shard(plan: ShardPlan, record: ShardRecord) -> None:
    """Add a produced shard to the manifest (under the lock, atomically)."""
    with _locked(plan.manifest):
        manifest = _load_manifest(plan)
        manifest["shards"][str(record.index)] = record.to_dict()
        manifest["merged"] = None
        _write_manifest(plan.manifest, manifest)


# ------------------------------------------------------------------ checking shard files


def _file_problem(path: Path, count: int, sha256: str, size: int) -> str | None:
    """Why ``path`` is not the file recorded (None if it is): missing, size, checksum,
    unreadable or row count."""
    if not path.is_file():
        return "file is missing"
    if path.stat().st_size != size:
        return f"file has {path.stat().st_size} bytes, {size} recorded (truncated?)"
    if file_sha256(path) != sha256:
        return "checksum mismatch (corrupt file)"
    try:
        rows = count_particles(path)
    except CalosimError as error:
        return f"unreadable ({error})"
    if rows != count:
        return f"holds {rows} rows, {count} recorded"
    return None


def shard_problem(plan: ShardPlan, index: int, manifest: dict[str, Any]) -> str | None:
    """None if shard ``index`` is done and its file valid, else what is wrong with it."""
    entry = manifest["shards"].get(str(index))
    if entry is None:
        return "not done"
    try:
        record = ShardRecord.from_dict(entry)
    except (KeyError, TypeError, ValueError, IndexError):
        return "manifest entry is malformed"
    start, stop = plan.rows(index)
    if record.rows != (start, stop) or record.count != stop - start:
        return f"manifest lists rows {record.rows}, expected {(start, stop)}"
    return _file_problem(plan.out.parent / Path(record.file).name, record.count,
                         record.sha256, record.bytes)


def merged_problem(plan: ShardPlan, manifest: dict[str, Any]) -> str | None:
    """None if the manifest records a valid merged output, else why not."""
    merged = manifest.get("merged")
    if not isinstance(merged, dict):
        return "not merged"
    try:
        return _file_problem(plan.out, int(merged["count"]), str(merged["sha256"]),
                             int(merged["bytes"]))
    except (KeyError, TypeError, ValueError):
        return "manifest's merged entry is malformed"


@dataclass(frozen=True)
class ShardStatus:
    index: int
    done: bool
    problem: str | None  # why it must be (re)done; None when done or simply not started


def shard_statuses(plan: ShardPlan, indices: Iterable[int] | None = None,
                   redo: bool = False) -> list[ShardStatus]:
    """Which of the plan's shards (or of ``indices``) are done and valid; ``redo`` treats
    every one as to be done."""
    manifest = _load_manifest(plan)
    statuses = []
    for index in range(plan.n_shards) if indices is None else indices:
        problem = "redo requested" if redo else shard_problem(plan, index, manifest)
        done = problem is None
        started = str(index) in manifest["shards"]
        statuses.append(ShardStatus(index, done, problem if started else None))
    return statuses


def is_merged(plan: ShardPlan) -> bool:
    """Whether OUT already holds the merged, checksum-verified output of this run."""
    return merged_problem(plan, _load_manifest(plan)) is None


# ------------------------------------------------------------------------- production


@functools.lru_cache(maxsize=2)
def _cached_simulator(model: str, device: str) -> DetectorSimulator:
    """One simulator per (model, device) and worker process, however many shards it runs."""
    from calosim.simulators.loading import load

    return load(model, device=device)


def produce_shard(
    plan: ShardPlan, index: int, simulator: DetectorSimulator | None = None,
    progress: bool = False,
) -> ShardRecord:
    """Write shard ``index`` of ``plan`` (atomically) and return its record; the manifest
    is not touched (``record_shard`` does that, in the process that owns the run).
    ``progress`` shows a bar over the shard's responses."""
    if simulator is None:
        simulator = _cached_simulator(plan.model, plan.device)
    if plan.torch_threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(plan.torch_threads)
    spec = plan.spec(index)
    start, stop = plan.particle_rows(index)
    path = plan.shard_file(index)
    summary = simulate_rows(
        simulator, plan.particles, path, seed=plan.seed, start=start, stop=stop,
        n_per_particle=plan.n_per_particle, chunk_size=plan.chunk_size, progress=progress,
        creator=plan.creator,
        attrs={"shard": f"{spec.index}/{spec.count}", "particle_rows": [start, stop]},
    )
    first, last = plan.rows(index)
    if summary.n_responses != last - first:
        raise DataFormatError(f"{plan.particles}: shard {spec.index}/{spec.count} expected "
                              f"{last - first} rows but got {summary.n_responses}")
    return ShardRecord(index=index, file=path.name, particle_rows=(start, stop),
                       rows=(first, last), count=summary.n_responses, sha256=file_sha256(path),
                       bytes=path.stat().st_size, seconds=round(summary.seconds, 3))


# A producer makes the given shards and yields their records as each one completes.
Producer = Callable[[ShardPlan, Sequence[int]], Iterable[ShardRecord]]


def local_producer(simulator: DetectorSimulator | None = None, progress: bool = True) -> Producer:
    """Produce shards one after the other in this process (``simulator`` already loaded);
    the progress bar counts shards, or the responses of a single one."""

    def produce(plan: ShardPlan, indices: Sequence[int]) -> Iterator[ShardRecord]:
        single = len(indices) == 1
        bar = tqdm(indices, unit="shard", disable=None if progress and not single else True,
                   desc="shards")
        for index in bar:
            yield produce_shard(plan, index, simulator, progress=progress and single)

    return produce


# ---------------------------------------------------------------------------- merging


class _StoredChannels:
    """The channels stored in a shard file, read by row range (None if it holds none).

    Copied rather than recomputed: a model that does not round its output gets channels
    of the unrounded responses, and the merge must reproduce the unsharded run exactly.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._is_hdf5 = output_format(path) == "h5"
        try:
            if self._is_hdf5:
                import h5py

                self._file: Any = h5py.File(path, "r")
                self._channels = self._file["channels"] if "channels" in self._file else None
            else:
                import uproot

                self._file = uproot.open(path)
                tree = self._file[ROOT_TREE]
                self._channels = tree["channels"] if "channels" in tree.keys() else None
        except (OSError, KeyError, ValueError) as exc:
            raise DataFormatError(f"{path}: cannot read channels ({exc})") from None

    def rows(self, start: int, stop: int) -> np.ndarray | None:
        if self._channels is None:
            return None
        if self._is_hdf5:
            return np.asarray(self._channels[start:stop])
        return np.asarray(self._channels.array(entry_start=start, entry_stop=stop, library="np"))

    def __enter__(self) -> _StoredChannels:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()


def _merged_attrs(plan: ShardPlan, first_shard: Path) -> dict[str, Any]:
    with open_data_file(first_shard) as source:
        attrs = {k: v for k, v in source.attrs.items() if k not in _SHARD_ATTRS}
    attrs["n_shards"] = plan.n_shards
    if plan.creator:
        attrs["creator"] = plan.creator
    return attrs


def merge_shards(plan: ShardPlan, *, keep_shards: bool = False,
                 progress: bool = True) -> int:
    """Stream every shard, in order, into OUT (atomically); returns the number of rows.

    All N shards must be done and valid (CalosimError naming the first that is not).
    The merged file is recorded in the manifest; then the shard files are removed
    unless ``keep_shards``.
    """
    manifest = _load_manifest(plan)
    for index in range(plan.n_shards):
        problem = shard_problem(plan, index, manifest)
        if problem is not None:
            raise CalosimError(f"{plan.out}: cannot merge, shard {index}/{plan.n_shards} "
                               f"{problem}")
    files = [plan.shard_file(i) for i in range(plan.n_shards)]
    total = plan.n_particles * plan.n_per_particle
    with ResponseWriter(plan.out, _merged_attrs(plan, files[0])) as writer, tqdm(
        total=total, unit="resp", disable=None if progress else True, desc="merge"
    ) as bar:
        for index, path in enumerate(files):
            if plan.rows(index)[1] == plan.rows(index)[0]:
                continue  # an empty shard (more shards than random blocks)
            if writer.copy_rows(path) is not None:
                bar.update(plan.rows(index)[1] - plan.rows(index)[0])
                continue
            with _StoredChannels(path) as stored:
                for chunk in iter_data_chunks(path, plan.chunk_size):
                    writer.append(chunk.particles, chunk.responses, pdg=chunk.pdg,
                                  channels=stored.rows(chunk.start, chunk.start + len(chunk)))
                    bar.update(len(chunk))
        if writer.n_written != total:  # raised inside the block: OUT is then not written
            raise DataFormatError(f"{plan.out}: merged {writer.n_written} rows, expected {total}")
    merged = {"file": plan.out.name, "count": total, "sha256": file_sha256(plan.out),
              "bytes": plan.out.stat().st_size}
    with _locked(plan.manifest):
        manifest = _load_manifest(plan)
        manifest["merged"] = merged
        _write_manifest(plan.manifest, manifest)
    if not keep_shards:
        for path in files:
            path.unlink(missing_ok=True)
    return total


# ------------------------------------------------------------------------ whole runs


@dataclass(frozen=True)
class ShardedRunSummary:
    """What a sharded invocation did."""

    out: Path
    manifest: Path
    seed: int
    n_shards: int
    produced: tuple[int, ...]  # shards written by this invocation
    skipped: tuple[int, ...]  # shards already done and valid
    redone: dict[int, str]  # shards redone, with what was wrong with them
    n_responses: int  # responses generated by this invocation
    merged: bool  # OUT holds the merged run
    seconds: float


def run_sharded(
    plan: ShardPlan,
    *,
    producer: Producer,
    indices: Sequence[int] | None = None,
    merge: bool = True,
    keep_shards: bool = False,
    redo: bool = False,
    progress: bool = True,
) -> ShardedRunSummary:
    """Produce the shards of ``plan`` that are not done (all, or ``indices``), recording
    each in the manifest as it completes, then merge if ``merge`` and all are done.

    A run already merged (OUT verified against its checksum) does nothing. ``redo``
    produces the chosen shards even if done.
    """
    begin = time.perf_counter()
    if not redo and is_merged(plan):
        return ShardedRunSummary(plan.out, plan.manifest, plan.seed, plan.n_shards, (),
                                 tuple(range(plan.n_shards)), {}, 0, True,
                                 time.perf_counter() - begin)
    statuses = shard_statuses(plan, indices, redo)
    todo = [s.index for s in statuses if not s.done]
    generated = 0
    for record in producer(plan, todo) if todo else ():
        record_shard(plan, record)
        generated += record.count
    merged = False
    if merge and indices is None:
        merge_shards(plan, keep_shards=keep_shards, progress=progress)
        merged = True
    return ShardedRunSummary(
        out=plan.out, manifest=plan.manifest, seed=plan.seed, n_shards=plan.n_shards,
        produced=tuple(todo), skipped=tuple(s.index for s in statuses if s.done),
        redone={s.index: s.problem for s in statuses if s.problem is not None},
        n_responses=generated, merged=merged, seconds=time.perf_counter() - begin,
    )
