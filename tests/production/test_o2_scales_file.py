"""O2 scales files: the writer writes what O2 parses, the reader refuses what O2 refuses
(O2's parsing as the test consumer implements it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from o2_consumer import o2_scales_lines as o2_blocks

from calosim.data import ALICE_DEPLOYED, ParticleStandardiser, read_scales_file, write_scales_file
from calosim.errors import CalosimError, DataFormatError

NINE = "1.5\n" * 9
GOOD = f"#means\n{NINE}\n#scales\n{NINE}"


def expect_data_error(path: Path, call, *, mentions: str) -> None:
    with pytest.raises(DataFormatError) as caught:
        call()
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and mentions in message


def test_round_trip_keeps_o2s_float32_values(tmp_path: Path) -> None:
    path = tmp_path / "scales.txt"
    write_scales_file(path, ALICE_DEPLOYED)
    text = path.read_text()
    lines = text.split("\n")
    assert lines[0] == "#means" and lines[10] == "" and lines[11] == "#scales"
    assert lines[21] == "" and len(lines) == 22 and "\r" not in text and "  " not in text
    assert o2_blocks(text) == (lines[1:10], lines[12:21])
    back = read_scales_file(path)
    np.testing.assert_array_equal(back.means, ALICE_DEPLOYED.means.astype(np.float32))
    np.testing.assert_array_equal(back.scales, ALICE_DEPLOYED.scales.astype(np.float32))
    assert float(lines[1]) == 1366.7 and float(lines[12]) == 1259.8
    write_scales_file(path, back)
    assert path.read_text() == text


@pytest.mark.parametrize(("text", "mentions"), [
    (GOOD.replace("\n", "\r\n"), "LF line endings"),             # what Windows editors write
    (GOOD.replace("#means", "# means"), "exactly '#means'"),
    (GOOD.replace("#means", "#means  "), "no spaces"),
    (GOOD.replace("#means\n", "#means\n\n"), "no numbers right after '#means'"),
    (GOOD.replace("#scales\n", "#scales\n\n"), "no numbers right after '#scales'"),
    (GOOD.replace("1.5\n", "  \n", 1), "not a number"),          # stof throws
    (GOOD.replace("1.5\n", "# the energy\n", 1), "not a number"),
    (GOOD.replace("\n\n#scales", "\n#scales"), "not a number"),  # no blank line: stof("#scales")
    (GOOD.replace("1.5\n", "1.5 2.5\n", 1), "more than one number"),
    ("#means\n" + "1\n" * 8 + "\n#scales\n" + NINE, "8 numbers under '#means'"),
    ("#means\n" + NINE + "\n#scales\n" + "1\n" * 10, "10 numbers under '#scales'"),
    (GOOD.replace("1.5\n", "nan\n", 1), "not finite"),
    (GOOD.replace("1.5\n", "1e40\n", 1), "float32 range"),
    (GOOD.replace("1.5\n", "1e-42\n", 1), "float32 range"),    # a denormal: ERANGE
    ("#means\n" + NINE + "\n#scales\n" + "1\n" * 8 + "0\n", "positive"),
    (NINE, "no line '#means'"),
    ("#means\n" + NINE, "no line '#scales'"),
])
def test_what_o2_refuses_is_refused_in_one_line(tmp_path: Path, text: str, mentions: str) -> None:
    path = tmp_path / "scales.txt"
    path.write_bytes(text.encode())
    expect_data_error(path, lambda: read_scales_file(path), mentions=mentions)


def test_what_o2_reads_is_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "scales.txt"
    # lines before the marker are skipped, numbers may carry spaces around them, and what
    # follows the scales block's end is not read
    numbers = ["  1366.7", "-7.8e-08 ", "+1.45E-7", ".00107", "0x1p-3", "2", "39.1", "353.7",
               "0"]
    path.write_text("calosim\n#means\n" + "\n".join(numbers) + "\n\n#scales\n" + NINE
                    + "\nanything\n")
    standardiser = read_scales_file(path)
    expected = [1366.7, -7.8e-8, 1.45e-7, 0.00107, 0.125, 2, 39.1, 353.7, 0]
    np.testing.assert_array_equal(standardiser.means, np.float32(expected))
    np.testing.assert_array_equal(standardiser.scales, np.full(9, 1.5))


def test_values_o2_cannot_read_are_not_written(tmp_path: Path) -> None:
    path = tmp_path / "scales.txt"
    path.write_text("old")
    tiny = ParticleStandardiser(np.zeros(9), np.r_[np.ones(8), 1e-40])
    with pytest.raises(CalosimError, match="float32 range"):
        write_scales_file(path, tiny)
    assert path.read_text() == "old"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "none.txt"
    expect_data_error(path, lambda: read_scales_file(path), mentions="no such file")


def _number(line: str) -> float:
    return float.fromhex(line) if "x" in line else float(line)


LINES = st.sampled_from(["#means", "#scales", "", " ", "1.5", "2e-3", "-4", "# means",
                         "#means\r", "x", "0x1p2", "1e39", "inf", "1.5 2", "\t7"])


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=30), st.booleans())
def test_any_text_loads_as_o2_loads_it_or_gives_one_line(tmp_path_factory, lines, newline
                                                         ) -> None:
    path = tmp_path_factory.mktemp("scales") / "scales.txt"
    text = "\n".join(lines) + ("\n" if newline else "")
    path.write_text(text)
    try:
        standardiser = read_scales_file(path)
    except DataFormatError as error:
        assert "\n" not in str(error) and str(path) in str(error)
        return
    blocks = o2_blocks(text)
    assert blocks is not None  # accepted means O2 loads it too, with the same numbers
    means, scales = ([np.float32(_number(line)) for line in block] for block in blocks)
    np.testing.assert_array_equal(standardiser.means, means)
    np.testing.assert_array_equal(standardiser.scales, scales)
