"""Identifiers of one scenario: a kind letter, the run tag, a counter (unique per run)."""

from __future__ import annotations


class Ids:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._n: dict[str, int] = {}

    def next(self, kind: str, width: int = 6) -> str:
        self._n[kind] = self._n.get(kind, 0) + 1
        return f"{kind}{self.tag}{self._n[kind]:0{width}d}"

    def number(self, kind: str) -> int:
        self._n[kind] = self._n.get(kind, 0) + 1
        return self._n[kind]
