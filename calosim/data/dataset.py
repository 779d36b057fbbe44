"""The in-memory dataset, whole-file reading and writing, and file summaries."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calosim.data.formats import (
    ATTR_CREATOR,
    ATTR_VERSION,
    DEFAULT_CHUNK_SIZE,
    ResponseWriter,
    open_data_file,
)
from calosim.data.schema import N_PIXELS, PARTICLE_COLUMNS, RESPONSE_SHAPE, as_particle_array
from calosim.data.tasks import DEFAULT_FRACTIONS, energy_task_splits, split_indices
from calosim.errors import CalosimError, DataFormatError

_PDG_NAMES = {
    22: "photon", 11: "electron", -11: "positron", 13: "mu-", -13: "mu+",
    111: "pi0", 211: "pi+", -211: "pi-", 130: "K0L", 310: "K0S", 321: "K+", -321: "K-",
    2112: "neutron", 2212: "proton", 3122: "Lambda", 3112: "Sigma-", 3222: "Sigma+",
    3212: "Sigma0", 3312: "Xi-", 3322: "Xi0", 3334: "Omega-",
}
ENERGY_QUANTILES = (5, 25, 50, 75, 95)
MIN_PHOTONS = 10  # the research datasets keep responses with at least this many photons


def pdg_name(code: int) -> str:
    """A readable name for a PDG id ("photon", "anti-neutron", "nucleus Z=2 A=4", "pdg 99")."""
    code = int(code)
    if code in _PDG_NAMES:
        return _PDG_NAMES[code]
    if -code in _PDG_NAMES:
        return "anti-" + _PDG_NAMES[-code]
    if 1_000_000_000 <= abs(code) < 1_100_000_000:  # nuclei: 10LZZZAAAI
        name = f"nucleus Z={abs(code) // 10_000 % 1_000} A={abs(code) // 10 % 1_000}"
        return name if code > 0 else "anti-" + name
    return f"pdg {code}"


@dataclass
class ZDCDataset:
    """Responses and the particles that made them, row by row.

    ``responses``: (N, 44, 44) float32 photon counts, or None for a particle list.
    ``particles``: (N, 9) float32 in PARTICLE_COLUMNS order. ``pdg``: (N,) int32 or
    None. ``attrs``: provenance (file attributes).
    """

    responses: np.ndarray | None
    particles: np.ndarray
    pdg: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.particles = as_particle_array(self.particles, source="dataset")
        n = len(self.particles)
        if self.responses is not None:
            responses = np.asarray(self.responses, dtype=np.float32)
            if responses.shape[1:] == (N_PIXELS,):
                responses = responses.reshape(len(responses), *RESPONSE_SHAPE)
            if responses.shape != (n, *RESPONSE_SHAPE):
                raise DataFormatError(f"dataset: responses of shape {responses.shape} for {n} "
                                      "particles, expected (N, 44, 44)")
            self.responses = responses
        if self.pdg is not None:
            pdg = np.asarray(self.pdg)
            if pdg.shape != (n,):
                raise DataFormatError(f"dataset: pdg of shape {pdg.shape} for {n} particles")
            self.pdg = pdg.astype(np.int32, copy=False)

    def __len__(self) -> int:
        return len(self.particles)

    @property
    def has_responses(self) -> bool:
        return self.responses is not None

    def subset(self, indices: Any) -> ZDCDataset:
        """The rows ``indices`` (integer array, boolean mask or slice), as a new dataset."""
        return ZDCDataset(
            responses=None if self.responses is None else self.responses[indices],
            particles=self.particles[indices],
            pdg=None if self.pdg is None else self.pdg[indices],
            attrs=dict(self.attrs),
        )

    def column(self, name: str) -> np.ndarray:
        """One particle attribute by name (see PARTICLE_COLUMNS), or "pdg"."""
        if name in PARTICLE_COLUMNS:
            return self.particles[:, PARTICLE_COLUMNS.index(name)]
        if name == "pdg" and self.pdg is not None:
            return self.pdg
        known = ", ".join(PARTICLE_COLUMNS + (("pdg",) if self.pdg is not None else ()))
        raise CalosimError(f"unknown particle column {name!r}; expected one of {known}")

    def split(self, seed: int,
              fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, ZDCDataset]:
        """Random train/val/test parts, fixed by ``seed`` (see tasks.split_indices)."""
        return {name: self.subset(rows)
                for name, rows in split_indices(len(self), seed, fractions).items()}

    def energy_tasks(self, n_tasks: int = 5, seed: int = 0,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[dict[str, ZDCDataset]]:
        """Energy tasks from low to high energy, each split into train/val/test."""
        splits = energy_task_splits(self.column("Energy"), n_tasks, seed, fractions)
        return [{name: self.subset(rows) for name, rows in task.items()} for task in splits]


def read_dataset(path: str | os.PathLike[str], format: str | None = None, *,
                 with_responses: bool = True, max_rows: int | None = None) -> ZDCDataset:
    """Read a data file (any format in FORMATS) into memory.

    ``with_responses=False`` reads only the particles; ``max_rows`` only the first rows.
    """
    with open_data_file(path, format) as source:
        n = source.n if max_rows is None else min(source.n, max(0, max_rows))
        want_responses = with_responses and source.has_responses
        particles = np.empty((n, len(PARTICLE_COLUMNS)), dtype=np.float32)
        responses = np.empty((n, *RESPONSE_SHAPE), dtype=np.float32) if want_responses else None
        pdg: np.ndarray | None = None
        for chunk in source.chunks(max(1, min(DEFAULT_CHUNK_SIZE, n)),
                                   with_responses=want_responses):
            rows = slice(chunk.start, min(n, chunk.start + len(chunk)))
            keep = rows.stop - rows.start
            particles[rows] = chunk.particles[:keep]
            if responses is not None:
                responses[rows] = chunk.responses[:keep]
            if chunk.pdg is not None:
                pdg = np.empty(n, dtype=np.int32) if pdg is None else pdg
                pdg[rows] = chunk.pdg[:keep]
            if rows.stop >= n:
                break
        return ZDCDataset(responses, particles, pdg, dict(source.attrs))


def read_particles(path: str | os.PathLike[str], format: str | None = None) -> ZDCDataset:
    """Read a particle list (responses, if the file holds them, are not read)."""
    return read_dataset(path, format, with_responses=False)


def write_dataset(path: str | os.PathLike[str], dataset: ZDCDataset,
                  attrs: Mapping[str, Any] | None = None, format: str | None = None) -> None:
    """Write ``dataset`` atomically (see ResponseWriter); ``attrs`` add to dataset.attrs."""
    inherited = {k: v for k, v in dataset.attrs.items() if k not in (ATTR_VERSION, ATTR_CREATOR)}
    with ResponseWriter(path, {**inherited, **(attrs or {})}, format) as writer:
        for start in range(0, len(dataset), DEFAULT_CHUNK_SIZE):
            rows = slice(start, start + DEFAULT_CHUNK_SIZE)
            writer.append(
                dataset.particles[rows],
                None if dataset.responses is None else dataset.responses[rows],
                None if dataset.pdg is None else dataset.pdg[rows],
            )


def describe_file(path: str | os.PathLike[str], format: str | None = None,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, Any]:
    """What a data file holds, for ``calosim info``; reads in chunks, so any size works.

    Keys: path, format, n, has_responses, attrs, species ({name: {pdg, count,
    fraction}}, most common first, or None without PDG ids), energy_quantiles_gev
    ({"5%": ..., "95%": ...} or None if empty), empty_fraction and
    fraction_at_least_10_photons (None without responses or rows).
    """
    with open_data_file(path, format) as source:
        n = source.n
        energies = np.empty(n, dtype=np.float32)
        species: Counter[int] = Counter()
        has_pdg = False
        n_empty = n_bright = 0
        for chunk in source.chunks(chunk_size):
            energies[chunk.start:chunk.start + len(chunk)] = chunk.particles[:, 0]
            if chunk.pdg is not None:
                has_pdg = True
                codes, counts = np.unique(chunk.pdg, return_counts=True)
                species.update(dict(zip(codes.tolist(), counts.tolist(), strict=True)))
            if chunk.responses is not None:
                photons = chunk.responses.reshape(len(chunk), -1).sum(axis=1, dtype=np.float64)
                n_empty += int((photons == 0).sum())
                n_bright += int((photons >= MIN_PHOTONS).sum())
        with_fractions = source.has_responses and n > 0
        return {
            "path": str(path),
            "format": source.format,
            "n": n,
            "has_responses": source.has_responses,
            "attrs": dict(source.attrs),
            "species": {
                pdg_name(code): {"pdg": code, "count": count, "fraction": count / n}
                for code, count in species.most_common()
            } if has_pdg else None,
            "energy_quantiles_gev": {
                f"{q}%": float(v) for q, v in zip(
                    ENERGY_QUANTILES, np.percentile(energies, ENERGY_QUANTILES), strict=True)
            } if n else None,
            "empty_fraction": n_empty / n if with_fractions else None,
            "fraction_at_least_10_photons": n_bright / n if with_fractions else None,
        }
