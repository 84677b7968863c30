"""docs/reliability.md accounts for every case of the reliability catalogue, and its tests exist.

The catalogue numbers its cases 1 to 98 in sections A to L. The page gives
each case the tests that prove it, or the reason it does not apply; this
test keeps that promise checkable: no case missing or listed twice, no test
named that is not in the suite.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"
CASES = range(1, 99)
ROW = re.compile(r"^\| *(\d+) *\| *([^|]+?) *\| *(.+?) *\|$")
TEST_ID = re.compile(r"`?(tests/[\w/]+\.py)::(\w+)")


def rows() -> dict[int, str]:
    found: dict[int, str] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line.strip())
        if match:
            number = int(match.group(1))
            assert number not in found, f"case {number} is listed twice"
            found[number] = match.group(3)
    return found


def test_every_case_is_accounted_for_once() -> None:
    listed = rows()
    assert sorted(listed) == list(CASES)
    for number, where in listed.items():
        assert TEST_ID.search(where) or where.startswith("n/a:"), (number, where)


def test_every_named_test_exists() -> None:
    for number, where in rows().items():
        for path, name in TEST_ID.findall(where):
            source = (ROOT / path).read_text(encoding="utf-8")
            pattern = rf"^(async )?def {name}\("
            assert re.search(pattern, source, re.MULTILINE), f"case {number}: {path}::{name}"
