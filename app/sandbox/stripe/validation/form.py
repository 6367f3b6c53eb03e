"""Stripe's form encoding (``a[b][0]=x``) decoded to nested dicts and lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import StripeParamError

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


class _Node:
    """A nested container while decoding: keyed children and/or ``[]`` appends."""

    __slots__ = ("keyed", "appended")

    def __init__(self) -> None:
        self.keyed: dict[str, Any] = {}
        self.appended: list[Any] = []


def is_index(key: str) -> bool:
    return key.isdigit() and str(int(key)) == key


def _split_key(key: str) -> list[str]:
    match = _KEY_RE.match(key)
    if match is None:
        # Not a bracketed name Stripe would parse; keep it whole so that it is
        # reported as an unknown parameter.
        return [key]
    return [match.group(1), *_SEGMENT_RE.findall(match.group(2))]


def _display(segments: list[str]) -> str:
    return segments[0] + "".join(f"[{s}]" for s in segments[1:])


def _conflict(segments: list[str]) -> StripeParamError:
    name = _display(segments)
    return StripeParamError(
        None,
        name,
        f"Invalid request: the parameter {name} was given both as a single value "
        "and as a nested hash or array.",
    )


def decode_form(body: bytes | str) -> dict[str, Any]:
    """Decode a Stripe form-encoded body or query string into nested values.

    ``a[b]=1`` gives ``{"a": {"b": "1"}}``; ``a[0]=x&a[1]=y`` and
    ``a[]=x&a[]=y`` give lists.  Keys that look like indices but are not
    exactly ``0..n-1`` stay a dict with string keys (``validate`` rejects such
    a dict where an array is expected, and accepts it where a hash such as
    ``metadata`` is expected).  Leaves stay strings: ``validate`` coerces.
    """
    try:
        text = bytes(body).decode("utf-8") if isinstance(body, bytes | bytearray) else body
        pairs = parse_qsl(text.removeprefix("?"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise StripeParamError(
            None, None, "Invalid request: the request is not valid UTF-8."
        ) from None
    root = _Node()
    for raw_key, value in pairs:
        if raw_key == "":
            continue
        segments = _split_key(raw_key)
        node = root
        for depth, seg in enumerate(segments):
            last = depth == len(segments) - 1
            if seg == "" and depth > 0:
                if last:
                    node.appended.append(value)
                    break
                # a[][b]=1: every such key starts a new element (the SDK always
                # sends indices for lists of hashes, so this form is rare).
                child = _Node()
                node.appended.append(child)
                node = child
                continue
            if last:
                existing = node.keyed.get(seg)
                if isinstance(existing, _Node):
                    raise _conflict(segments)
                node.keyed[seg] = value  # a repeated key: the last one wins
                break
            child = node.keyed.get(seg)
            if child is None:
                child = node.keyed[seg] = _Node()
            elif not isinstance(child, _Node):
                raise _conflict(segments[: depth + 1])
            node = child
    return _finish(root, [])  # type: ignore[return-value]


def _finish(node: Any, path: list[str]) -> Any:
    if not isinstance(node, _Node):
        return node
    if node.appended and node.keyed:
        raise StripeParamError(
            None,
            _display(path),
            f"Invalid array: {_display(path)} mixes indexed ([0]) and appended ([]) elements.",
        )
    if node.appended:
        return [_finish(v, [*path, str(i)]) for i, v in enumerate(node.appended)]
    keys = list(node.keyed)
    if path and keys and all(is_index(k) for k in keys):
        indices = sorted(int(k) for k in keys)
        if indices == list(range(len(indices))):
            return [_finish(node.keyed[str(i)], [*path, str(i)]) for i in indices]
    return {k: _finish(v, [*path, k]) for k, v in node.keyed.items()}
