"""Constraints are parsed by a small grammar (never eval) and checked per parameter set."""

from __future__ import annotations

import re

import pytest
from engine_plugin_optimize.constraints import ConstraintSyntaxError, parse_constraint


@pytest.mark.parametrize(
    "text, params, holds",
    [
        ("slow > fast + 5", {"slow": 20, "fast": 10}, True),
        ("slow > fast + 5", {"slow": 15, "fast": 10}, False),
        ("slow >= fast * 2 - 1", {"slow": 19, "fast": 10}, True),
        ("slow / fast != 3", {"slow": 30, "fast": 10}, False),
        ("-fast < -(slow - 25)", {"slow": 30, "fast": 6}, True),
        ("-fast < -(slow - 25)", {"slow": 30, "fast": 4}, False),
        ("5 <= fast < slow", {"slow": 30, "fast": 4}, False),
        ("5 <= fast < slow", {"slow": 30, "fast": 5}, True),
        ("5 <= fast < slow", {"slow": 5, "fast": 5}, False),
        ("stop == 0.05", {"stop": 0.05}, True),
        ("1e-2 < stop", {"stop": 0.05}, True),
        ("2 * (a + b) / 4 == 1.5", {"a": 1, "b": 2}, True),
    ],
)
def test_evaluates_like_arithmetic(text: str, params: dict, holds: bool) -> None:
    assert (parse_constraint(text).violation(params) is None) is holds


def test_names_and_reason() -> None:
    c = parse_constraint("  slow > fast + 5 ")
    assert c.names == {"slow", "fast"}
    assert c.violation({"slow": 12, "fast": 10}) == "violates slow > fast + 5"


def test_division_by_zero_is_a_violation() -> None:
    assert parse_constraint("slow / fast > 2").violation({"slow": 1, "fast": 0}) == "slow / fast > 2: division by zero"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("fast", "compares nothing"),
        ("fast + 5", "compares nothing"),
        ("fast >", "ends too early"),
        ("fast > 3 3", "unexpected '3' at column 10"),
        ("(fast > 3", "missing ')'"),
        ("fast > (3", "missing ')' for the '(' at column 8"),
        ("fast ** 2 > 1", "unexpected '*' at column 7"),
        ("fast > slow and slow > 3", "unexpected 'and' at column 13"),
        ('__import__("os") > 1', "unexpected '\"' at column 12"),
        ("fast.real > 1", "unexpected '.' at column 5"),
        ("fast > $x", "unexpected '$' at column 8"),
    ],
)
def test_rejects_anything_else(text: str, message: str) -> None:
    with pytest.raises(ConstraintSyntaxError, match=re.escape(message)):
        parse_constraint(text)
