"""Hypothesis strategies built from msgspec's own type information.

Building from ``msgspec.inspect.type_info`` (not ``st.from_type``) means every constraint
the decoder enforces (patterns, minimums, aware datetimes, enums) is honoured, so a
generated event is always one a real producer could send.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

# JSON consumers in other languages lose precision past 2**53: stay inside it.
_INT_MIN, _INT_MAX = -(2**53), 2**53

_OFFSETS = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)


def strategy_for(info: mi.Type) -> st.SearchStrategy[Any]:
    match info:
        case mi.StructType():
            fields = {
                f.name: strategy_for(f.type) for f in info.fields if f.name != "schema_version"
            }
            return st.builds(info.cls, **fields)
        case mi.StrType(pattern=str() as pattern):
            return st.from_regex(pattern, fullmatch=True)
        case mi.StrType():
            return st.text(min_size=info.min_length or 0, max_size=info.max_length or 20)
        case mi.IntType():
            low = info.ge if info.ge is not None else _INT_MIN
            return st.integers(min_value=low, max_value=_INT_MAX)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.BytesType():
            return st.binary(max_size=64)
        case mi.EnumType():
            return st.sampled_from(list(info.cls))
        case mi.LiteralType():
            return st.sampled_from(list(info.values))
        case mi.DateType():
            return st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2100, 1, 1))
        case mi.DateTimeType():
            return st.datetimes(
                min_value=dt.datetime(1970, 1, 2),
                max_value=dt.datetime(2100, 1, 1),
                timezones=_OFFSETS if info.tz else st.none(),
            )
        case mi.UnionType():
            return st.one_of([strategy_for(t) for t in info.types])
        case mi.VarTupleType():
            return st.lists(strategy_for(info.item_type), max_size=3).map(tuple)
        case mi.ListType():
            return st.lists(strategy_for(info.item_type), max_size=3)
    raise NotImplementedError(f"no strategy for {info!r}: extend contract_strategies.py")


def events(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    return strategy_for(mi.type_info(cls))
