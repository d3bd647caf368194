"""Constraints between parameters (``slow > fast + 5``), parsed without eval.

The grammar is small on purpose::

    constraint := sum (compare sum)+          compare: < <= > >= == !=
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := number | name | "(" sum ")"

Names are strategy parameters; a chain (``5 <= fast < slow``) holds when
every link holds, as in Python. A parameter set that breaks a constraint is
never run.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|<|>|[-+*/()])"
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}

# An expression tree: ("num", value) | ("name", name) | ("neg", expr) | ("op", symbol, left, right)
Expr = tuple[Any, ...]


class ConstraintSyntaxError(ValueError):
    """The text is not a constraint; the message says where."""


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: a chain of comparisons between arithmetic expressions."""

    text: str
    terms: tuple[Expr, ...]
    comparisons: tuple[str, ...]
    names: frozenset[str]

    def violation(self, params: Mapping[str, Any]) -> str | None:
        """None when ``params`` satisfy the constraint, else why not (one line)."""
        try:
            values = [_value(term, params) for term in self.terms]
        except ZeroDivisionError:
            return f"{self.text}: division by zero"
        for op, left, right in zip(self.comparisons, values, values[1:]):
            if not _COMPARE[op](left, right):
                return f"violates {self.text}"
        return None


def _value(expr: Expr, params: Mapping[str, Any]) -> float:
    kind = expr[0]
    if kind == "num":
        return float(expr[1])
    if kind == "name":
        return float(params[expr[1]])
    if kind == "neg":
        return -_value(expr[1], params)
    return _ARITHMETIC[expr[1]](_value(expr[2], params), _value(expr[3], params))


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, column) of each token; a character no token starts with is an error."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConstraintSyntaxError(f"unexpected {text[pos]!r} at column {pos + 1}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(), pos + 1))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.names: set[str] = set()

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise ConstraintSyntaxError("ends too early")
        self.i += 1
        return token

    def is_op(self, *symbols: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in symbols

    def sum(self) -> Expr:
        return self.left_to_right(("+", "-"), self.product)

    def product(self) -> Expr:
        return self.left_to_right(("*", "/"), self.unary)

    def left_to_right(self, symbols: tuple[str, ...], operand: Callable[[], Expr]) -> Expr:
        """Operands joined by operators of one precedence, left-associative."""
        expr = operand()
        while self.is_op(*symbols):
            expr = ("op", self.take()[1], expr, operand())
        return expr

    def unary(self) -> Expr:
        if self.is_op("-"):
            self.take()
            return ("neg", self.unary())
        return self.atom()

    def atom(self) -> Expr:
        kind, text, column = self.take()
        if kind == "number":
            return ("num", float(text))
        if kind == "name":
            self.names.add(text)
            return ("name", text)
        if text == "(":
            expr = self.sum()
            if not self.is_op(")"):
                raise ConstraintSyntaxError(f"missing ')' for the '(' at column {column}")
            self.take()
            return expr
        raise ConstraintSyntaxError(f"unexpected {text!r} at column {column}")


def parse_constraint(text: str) -> Constraint:
    """Parse one constraint; ConstraintSyntaxError says what is wrong and where."""
    parser = _Parser(text)
    if not parser.tokens:
        raise ConstraintSyntaxError("is empty")
    terms = [parser.sum()]
    comparisons: list[str] = []
    while parser.is_op(*_COMPARE):
        comparisons.append(parser.take()[1])
        terms.append(parser.sum())
    rest = parser.peek()
    if rest is not None:
        raise ConstraintSyntaxError(f"unexpected {rest[1]!r} at column {rest[2]}")
    if not comparisons:
        raise ConstraintSyntaxError("compares nothing (write e.g. slow > fast + 5)")
    return Constraint(text.strip(), tuple(terms), tuple(comparisons), frozenset(parser.names))


__all__ = ["Constraint", "ConstraintSyntaxError", "parse_constraint"]
