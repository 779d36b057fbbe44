"""The means/scales text file of ALICE O2's ZDC fast simulation, read as O2 reads it.

O2 reads lines up to one that equals ``#means`` exactly, converts each following line
with ``std::stof`` up to the first empty line or the end, then does the same from there
for ``#scales``; it fails when a block is empty or the two sizes differ, and a line
``stof`` cannot convert throws. Hence: LF endings, markers alone on their line, no blank
line right after a marker, one number per line, one empty line between the blocks. The
reader refuses whatever O2 would refuse (and numbers followed by anything but spaces,
which O2 would read only in part), so a file calosim accepts is one O2 runs.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from calosim.data.formats import atomic_output
from calosim.data.schema import N_ATTRIBUTES
from calosim.data.transforms import ParticleStandardiser
from calosim.errors import CalosimError, DataFormatError

MEANS_MARKER = "#means"
SCALES_MARKER = "#scales"
# The prefix strtof converts: hexadecimal, decimal, inf/infinity and nan forms.
_STOF_PREFIX = re.compile(
    r"[ \t\n\v\f\r]*([+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
    r"(?:[pP][+-]?\d+)?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?"
    r"|nan(?:\([0-9A-Za-z_]*\))?))", re.IGNORECASE)
_FLOAT32 = np.finfo(np.float32)


def write_scales_file(path: str | os.PathLike[str], standardiser: ParticleStandardiser) -> None:
    """Write the O2 file: ``#means``, 9 lines, an empty line, ``#scales``, 9 lines.

    The numbers are the float32 values O2 computes with, written so that they read back
    exactly; values float32 cannot hold (O2's ``stof`` would throw) are refused."""
    lines = [MEANS_MARKER, *_o2_numbers(standardiser.means, "mean"), "",
             SCALES_MARKER, *_o2_numbers(standardiser.scales, "scale")]
    with atomic_output(path) as temp:
        temp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _o2_numbers(values: np.ndarray, what: str) -> list[str]:
    out = []
    for value in values.tolist():
        if not _float32_readable(value):
            raise CalosimError(f"{what} {value!r} cannot be written for O2: outside the "
                               "normal float32 range that std::stof reads")
        out.append(str(np.float32(value)))
    return out


def _float32_readable(value: float) -> bool:
    return value == 0 or (math.isfinite(value)
                          and float(_FLOAT32.tiny) <= abs(value) <= float(_FLOAT32.max))


def read_scales_file(path: str | os.PathLike[str]) -> ParticleStandardiser:
    """Read an O2 means/scales file as O2 does (float32 values); DataFormatError, one
    line naming the file and the line, for anything O2 would refuse."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = ("no such file" if isinstance(exc, FileNotFoundError)
                  else f"cannot read ({getattr(exc, 'strerror', None) or exc})")
        raise DataFormatError(f"{path}: {reason}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the end of the last line, not an empty line (std::getline)
    means, after_means = _block(path, lines, 0, MEANS_MARKER)
    scales, _ = _block(path, lines, after_means, SCALES_MARKER)
    for name, values in (("means", means), ("scales", scales)):
        if len(values) != N_ATTRIBUTES:
            raise DataFormatError(f"{path}: {len(values)} numbers under '#{name}', "
                                  f"{N_ATTRIBUTES} needed")
    if min(scales) <= 0:
        raise DataFormatError(f"{path}: scales must be positive")
    return ParticleStandardiser(np.array(means), np.array(scales))


def _block(path: Path, lines: list[str], start: int, marker: str) -> tuple[list[float], int]:
    """The numbers under ``marker`` (searched from line ``start``) and where they end."""
    try:
        first = lines.index(marker, start) + 1
    except ValueError:
        raise DataFormatError(f"{path}: no line {marker!r}{_near_miss(lines, start, marker)}; "
                              "O2 would find no such block") from None
    values: list[float] = []
    end = first
    while end < len(lines) and lines[end] != "":
        values.append(_stof(path, end + 1, lines[end]))
        end += 1
    if not values:
        raise DataFormatError(f"{path}: line {first + 1}: no numbers right after {marker!r} "
                              "(O2 reads the block as empty)")
    return values, end


def _near_miss(lines: list[str], start: int, marker: str) -> str:
    squeezed = marker.replace("#", "")
    for number, line in enumerate(lines[start:], start=start + 1):
        if line.replace(" ", "").replace("\r", "").lower() == f"#{squeezed}":
            return (f" (line {number} is {line!r}: O2 needs exactly {marker!r}, with LF "
                    "line endings and no spaces)")
    return ""


def _stof(path: Path, number: int, line: str) -> float:
    match = _STOF_PREFIX.match(line)
    if match is None:
        raise DataFormatError(f"{path}: line {number}: {line!r} is not a number (O2's "
                              "std::stof would throw)")
    if line[match.end():].strip(" \t\r\v\f"):
        raise DataFormatError(f"{path}: line {number}: {line!r} has more than one number "
                              f"(O2 would read only {match.group(1)!r})")
    token = match.group(1)
    value = float.fromhex(token) if "x" in token.lower() else float(token.split("(")[0])
    if not math.isfinite(value):
        raise DataFormatError(f"{path}: line {number}: {token!r} is not finite")
    if not _float32_readable(value):
        raise DataFormatError(f"{path}: line {number}: {token!r} is outside the float32 "
                              "range (O2's std::stof would throw)")
    return float(np.float32(value))
