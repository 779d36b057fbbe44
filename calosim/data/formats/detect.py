"""Format names, and which format a file is (for reading) or gets (for writing)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from calosim.data.formats.base import _fail, _translate_errors
from calosim.errors import CalosimError

FORMATS: tuple[str, ...] = ("h5", "calochallenge", "root", "npz", "csv")
_FORMAT_ALIASES = {"hdf5": "h5", "canonical": "h5", "calo": "calochallenge"}
_SUFFIX_FORMATS = {".h5": "h5", ".hdf5": "h5", ".hdf": "h5", ".root": "root", ".npz": "npz",
                   ".csv": "csv"}


def _format_name(format: str) -> str:
    name = _FORMAT_ALIASES.get(format.lower(), format.lower())
    if name not in FORMATS:
        raise CalosimError(f"unknown data format {format!r}; expected one of {', '.join(FORMATS)}")
    return name


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        return "h5"
    if magic.startswith(b"root"):
        return "root"
    if magic.startswith(b"PK\x03\x04"):
        return "npz"
    return None


def _hdf5_flavour(path: Path) -> str:
    with _translate_errors(path), h5py.File(path, "r") as file:
        return "calochallenge" if "showers" in file else "h5"


def detect_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format of an existing data file (or npz pair directory), one of FORMATS.

    ``format`` overrides the guess. Otherwise the extension decides (an HDF5 file holding
    ``showers`` is CaloChallenge), and for unknown extensions the file's first bytes.
    """
    path = Path(path)
    if format is not None:
        return _format_name(format)
    if path.is_dir():
        return "npz"
    name = _SUFFIX_FORMATS.get(path.suffix.lower())
    if name == "npz":
        return name  # the npz reader finds the other file of a pair, or says it is missing
    if not path.exists():
        raise _fail(path, "no such file")
    if name is None:
        with _translate_errors(path):
            name = _sniff(path)
        if name is None:
            extensions = ", ".join(_SUFFIX_FORMATS)
            raise _fail(path, "not a data file calosim knows (HDF5, ROOT, npz or CSV); name "
                              f"a CSV particle list with one of the extensions {extensions}")
    return _hdf5_flavour(path) if name == "h5" else name


def output_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format a writer uses for ``path``: ``format`` if given, else from the extension."""
    path = Path(path)
    if format is not None:
        name = _format_name(format)
    elif path.is_dir():
        name = "npz"
    else:
        name = _SUFFIX_FORMATS.get(path.suffix.lower(), "")
        if not name:
            raise _fail(path, "cannot tell the output format from the extension; use one of "
                              f"{', '.join(s for s, f in _SUFFIX_FORMATS.items() if f != 'csv')}")
    if name == "csv":
        raise _fail(path, "calosim reads particle lists from CSV but does not write CSV")
    return name
