"""Calculated metrics: the arithmetic MDX a model's calculations are written in.

A calculation such as `[Measures].[Revenue] / [Measures].[Orders]` is parsed into a small
tree (`Calc`) that the resolver reads for the base metrics it needs and the navigator
turns into SQL over their finals. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aggsched.planning.query import QueryError

# an arithmetic calculation: a metric reference, a number, a negation or a binary operation
Calc = tuple[Any, ...]
_TOKEN = re.compile(
    r"\s*(?:(?P<ref>\[\s*Measures\s*\]\s*\.\s*\[(?P<name>(?:[^\]]|\]\])+)\])"
    r"|(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)|(?P<op>[-+*/()]))",
    re.IGNORECASE,
)


def parse_calculation(name: str, expression: str) -> Calc:
    """The arithmetic AST of an MDX calculation over `[Measures].[X]`, numbers, `+ - * /`
    and parentheses; anything else (MDX functions, tuples, members) is a `QueryError`."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, expression.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            rest = text[pos:].strip()
            raise QueryError(
                "metrics",
                f'calculated metric "{name}" is not arithmetic over metrics and numbers '
                f"(at {rest[:40]!r}); aggsched answers only such calculations",
            )
        if match.group("ref"):
            tokens.append(("ref", match.group("name").replace("]]", "]")))
        elif match.group("num"):
            tokens.append(("num", match.group("num")))
        else:
            tokens.append(("op", match.group("op")))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    parser = _CalcParser(name, tokens)
    tree = parser.sum()
    if parser.pos != len(tokens):
        raise QueryError(
            "metrics", f'calculated metric "{name}": unexpected {tokens[parser.pos][1]!r}'
        )
    return tree


@dataclass
class _CalcParser:
    name: str
    tokens: list[tuple[str, str]]
    pos: int = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _fail(self, what: str) -> QueryError:
        return QueryError("metrics", f'calculated metric "{self.name}": {what}')

    def sum(self) -> Calc:
        left = self.product()
        while (tok := self._peek()) and tok in (("op", "+"), ("op", "-")):
            self.pos += 1
            left = (tok[1], left, self.product())
        return left

    def product(self) -> Calc:
        left = self.unary()
        while (tok := self._peek()) and tok in (("op", "*"), ("op", "/")):
            self.pos += 1
            left = (tok[1], left, self.unary())
        return left

    def unary(self) -> Calc:
        tok = self._peek()
        if tok == ("op", "-"):
            self.pos += 1
            return ("neg", self.unary())
        if tok == ("op", "+"):
            self.pos += 1
            return self.unary()
        return self.atom()

    def atom(self) -> Calc:
        tok = self._peek()
        if tok is None:
            raise self._fail("the expression ends too early")
        self.pos += 1
        if tok[0] in ("ref", "num"):
            return tok
        if tok == ("op", "("):
            inner = self.sum()
            if self._peek() != ("op", ")"):
                raise self._fail("a parenthesis is not closed")
            self.pos += 1
            return inner
        raise self._fail(f"unexpected {tok[1]!r}")


def calc_refs(tree: Calc) -> list[str]:
    """The metric names a calculation refers to, in order."""
    if tree[0] == "ref":
        return [tree[1]]
    if tree[0] == "num":
        return []
    return [name for sub in tree[1:] for name in calc_refs(sub)]
