"""A small, safe expression language over named amounts — parsed, never ``eval``-ed.

    expr    := term (("+" | "-") term)*
    term    := unary ("*" unary)*
    unary   := "-" unary | primary
    primary := INTEGER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Names are the named amounts of the event (``charge``, ``paid``, ``adj_co`` …); integers are
minor units (or plain factors for ``*``); functions are ``abs``, ``min`` and ``max``. There is
no division: a fraction of an amount is a split, which rounds explicitly (largest remainder).
Multiplying two amounts, or a posting amount with no named amount in it, is refused at load.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from carebus_mapper.domain.amounts import Amount

FUNCTIONS: Final = frozenset({"abs", "min", "max"})
_TOKEN_RE: Final = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")
_MAX_LENGTH: Final = 500
_MAX_DEPTH: Final = 32


class ExpressionError(ValueError):
    """The expression does not parse or does not type-check; ``column`` is 1-based."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(f"{message} (column {column})" if column else message)


class MissingAmount(LookupError):
    """The event lacks a named amount the expression uses."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


@dataclass(frozen=True, slots=True)
class Number:
    value: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Node, ...]


Node = Number | Name | Negate | Binary | Call


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # int | name | op | end
    text: str
    column: int


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    stripped = source.rstrip()
    while position < len(stripped):
        match = _TOKEN_RE.match(stripped, position)
        if match is None:  # pragma: no cover - the pattern matches any character
            raise ExpressionError("unreadable input", position + 1)
        column = match.start(match.lastindex or 0) + 1
        number, name, op = match.groups()
        if number is not None:
            found.append(_Token("int", number, column))
        elif name is not None:
            found.append(_Token("name", name, column))
        elif op in ("+", "-", "*", "(", ")", ","):
            found.append(_Token("op", op, column))
        else:
            raise ExpressionError(f"unexpected character {op!r}", column)
        position = match.end()
    found.append(_Token("end", "", len(stripped) + 1))
    return found


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            found = repr(token.text) if token.text else "end of expression"
            raise ExpressionError(f"expected {text!r}, found {found}", token.column)

    def parse(self) -> Node:
        node = self.expr()
        token = self.peek()
        if token.kind != "end":
            raise ExpressionError(f"unexpected {token.text!r}", token.column)
        return node

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ExpressionError("expression nested too deeply", self.peek().column)
        node = self.term()
        while self.peek().text in ("+", "-") and self.peek().kind == "op":
            op = self.take().text
            node = Binary(op, node, self.term())
        self.depth -= 1
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek().text == "*" and self.peek().kind == "op":
            self.take()
            node = Binary("*", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek().text == "-" and self.peek().kind == "op":
            self.take()
            return Negate(self.unary())
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "int":
            return Number(int(token.text))
        if token.kind == "name":
            if self.peek().text == "(":
                if token.text not in FUNCTIONS:
                    known = ", ".join(sorted(FUNCTIONS))
                    raise ExpressionError(
                        f"unknown function {token.text!r} (known: {known})", token.column
                    )
                self.take()
                args = [self.expr()]
                while self.peek().text == ",":
                    self.take()
                    args.append(self.expr())
                self.expect(")")
                if token.text == "abs" and len(args) != 1:
                    raise ExpressionError("abs() takes one argument", token.column)
                return Call(token.text, tuple(args))
            return Name(token.text)
        if token.text == "(":
            node = self.expr()
            self.expect(")")
            return node
        found = repr(token.text) if token.text else "end of expression"
        raise ExpressionError(f"expected a number, a name or '(', found {found}", token.column)


@dataclass(frozen=True)
class Expression:
    """A parsed expression; ``names`` are the named amounts it reads."""

    source: str
    tree: Node
    names: frozenset[str]
    is_amount: bool
    """True when the result carries a unit (it reads at least one named amount)."""

    def evaluate(self, amounts: Mapping[str, Amount]) -> Amount:
        return _evaluate(self.tree, amounts)


def _names(node: Node) -> set[str]:
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Negate):
        return _names(node.operand)
    if isinstance(node, Binary):
        return _names(node.left) | _names(node.right)
    if isinstance(node, Call):
        return set().union(*(_names(a) for a in node.args))
    return set()


def _is_amount(node: Node) -> bool:
    """Static unit check: refuse amount * amount, which has no accounting meaning."""
    if isinstance(node, Number):
        return False
    if isinstance(node, Name):
        return True
    if isinstance(node, Negate):
        return _is_amount(node.operand)
    if isinstance(node, Call):
        return any(_is_amount(a) for a in node.args)
    left, right = _is_amount(node.left), _is_amount(node.right)
    if node.op == "*" and left and right:
        raise ExpressionError("two amounts cannot be multiplied; multiply by a plain number")
    return left or right


def parse(source: str) -> Expression:
    """Parse and type-check ``source``; raise ExpressionError naming the column."""
    if not source.strip():
        raise ExpressionError("empty expression")
    if len(source) > _MAX_LENGTH:
        raise ExpressionError(f"longer than {_MAX_LENGTH} characters")
    tree = _Parser(source).parse()
    return Expression(source, tree, frozenset(_names(tree)), _is_amount(tree))


def _fold(values: list[Amount], pick: Callable[[int, int], int]) -> Amount:
    result = values[0]
    for value in values[1:]:
        result = Amount(pick(result.minor, value.minor), result.combine_unit(value))
    return result


def _evaluate(node: Node, amounts: Mapping[str, Amount]) -> Amount:
    if isinstance(node, Number):
        return Amount(node.value)
    if isinstance(node, Name):
        try:
            return amounts[node.name]
        except KeyError:
            raise MissingAmount(node.name) from None
    if isinstance(node, Negate):
        value = _evaluate(node.operand, amounts)
        return Amount(-value.minor, value.unit)
    if isinstance(node, Call):
        values = [_evaluate(a, amounts) for a in node.args]
        if node.function == "abs":
            return Amount(abs(values[0].minor), values[0].unit)
        return _fold(values, min if node.function == "min" else max)
    left, right = _evaluate(node.left, amounts), _evaluate(node.right, amounts)
    unit = left.combine_unit(right)
    if node.op == "+":
        return Amount(left.minor + right.minor, unit)
    if node.op == "-":
        return Amount(left.minor - right.minor, unit)
    return Amount(left.minor * right.minor, unit)
