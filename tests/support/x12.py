"""Helpers shared by the X12 835 tests: which samples are X12, and text surgery on X12."""

from __future__ import annotations

from pathlib import Path

from tests.support.samples import SAMPLES

LFH_835 = "x12/LinuxForHealth-x12/src/tests/resources/835_005010X221A1"
PYX12_835 = "x12/azoner-pyx12/extracted/835_4010_X091A1_reversals_CLP22_PLB.835"
X12_TAGS = ("ISA", "GS", "ST")


def sample_text(relative: str) -> str:
    return (SAMPLES / relative).read_text(encoding="utf-8")


def is_x12(path: Path) -> bool:
    head = path.read_bytes()[:8].decode("utf-8", "replace").lstrip("\ufeff \r\n")
    return head.startswith(X12_TAGS) and len(head) > 3 and not head[3].isalnum()


def sample_files() -> list[str]:
    """Every file below the samples root, relative, sorted."""
    return sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.is_file())


def source_folder(relative: str) -> str:
    return "/".join(relative.split("/")[:2])


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def with_separators(
    text: str, *, element: str, component: str, segment: str, repetition: str, newline: str
) -> str:
    """Rewrite a sample written with * : ~ ^ (and newlines) using other separators."""
    body = text.replace("~\r\n", "~").replace("~\n", "~").rstrip("\n")
    mapping = {"*": element, ":": component, "~": segment, "^": repetition}
    for old, new in mapping.items():
        assert old == new or new not in body, f"{new!r} already occurs in the sample"
    table = str.maketrans(mapping | {"~": segment + newline})
    return body.translate(table)


def without_envelope(text: str, *, keep_group: bool = False) -> str:
    """Drop ISA/IEA (and GS/GE unless keep_group) as some senders do."""
    drop = {"ISA", "IEA"} if keep_group else {"ISA", "IEA", "GS", "GE"}
    lines = [line for line in text.splitlines() if line.split("*", 1)[0] not in drop]
    return "\n".join(lines) + "\n"
