"""JSON helpers: Decimal is written as an exact number literal, never through float."""

from __future__ import annotations

import json
from decimal import Decimal

_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def dec_str(d: Decimal) -> str:
    if not d.is_finite():
        raise ValueError(f"cannot encode {d!r} as JSON")
    text = format(d, "f")
    return "0" if text in ("-0", "") else text


def _enc(o, out) -> None:  # noqa: C901 - a small hand-written encoder
    if o is None:
        out("null")
    elif o is True:
        out("true")
    elif o is False:
        out("false")
    elif isinstance(o, str):
        out(_str(o))
    elif isinstance(o, int):
        out(str(int(o)))
    elif isinstance(o, Decimal):
        out(dec_str(o))
    elif isinstance(o, float):
        out(repr(o))
    elif isinstance(o, dict):
        out("{")
        first = True
        for k, v in o.items():
            if not first:
                out(",")
            first = False
            out(_str(str(k)))
            out(":")
            _enc(v, out)
        out("}")
    elif isinstance(o, list | tuple):
        out("[")
        for i, v in enumerate(o):
            if i:
                out(",")
            _enc(v, out)
        out("]")
    else:
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(o) -> str:
    parts: list[str] = []
    _enc(o, parts.append)
    return "".join(parts)


def loads(text: str | bytes):
    """Parse JSON keeping non-integer numbers as Decimal."""
    return json.loads(text, parse_float=Decimal)
