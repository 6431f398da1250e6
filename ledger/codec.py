"""Canonical MessagePack (DESIGN §2): the only bytes that are ever hashed or signed.

Canonical means: nil, bool, int (-2**63 .. 2**64-1), str, bin, array and map only; map
keys are str, sorted by their UTF-8 bytes, without duplicates; every value in its
shortest form. ``decode`` accepts exactly the byte strings that ``encode`` produces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from ledger.errors import CodecError

__all__ = [
    "MAX_DEPTH",
    "MAX_INPUT_BYTES",
    "CodecError",
    "decode",
    "decode_vouched",
    "encode",
    "encode_canonical",
    "plain_sorted",
]

MAX_DEPTH = 32
# A block of max_block_entries (5,000) entries of max_entry_bytes (16 KiB) is ~80 MiB;
# callers with tighter limits pass their own ``max_bytes``.
MAX_INPUT_BYTES = 96 * 1024 * 1024

_SCALARS: frozenset[type] = frozenset({str, bytes, int, bool, type(None)})
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


# One Packer for the module instead of the one ``msgpack.packb`` builds per call (a third
# of a small value's packing time). Sharing it is safe: only values of the data model
# reach it (dicts, lists, str, bytes, int, bool, None, as checked or rebuilt here), whose
# packing runs no Python code, so one pack cannot be interleaved with another (and
# nothing below ``node`` runs threads: tests/test_layering.py); a failed pack resets it.
_packer = msgpack.Packer(use_bin_type=True)


def _pack(obj: object) -> bytes:
    return _packer.pack(obj)  # type: ignore[no-any-return]


def encode(obj: object) -> bytes:
    """Encode ``obj`` canonically; raise CodecError for anything outside the data model."""
    # Values the node builds itself are usually canonical already (sorted keys, plain
    # types): checking that is cheaper than rebuilding them and packs the same bytes.
    # Anything the quick path cannot pack goes the long way for the precise error.
    if type(obj) in _CONTAINERS and plain_sorted(obj, 0):
        try:
            return _pack(obj)
        except (OverflowError, UnicodeEncodeError, ValueError, TypeError):
            pass
    try:
        return _pack(_canonical(obj, 0))
    except (OverflowError, UnicodeEncodeError, ValueError, TypeError) as exc:
        raise CodecError(f"cannot encode: {exc}") from exc


def encode_canonical(obj: object) -> tuple[Any, bytes]:
    """(the canonical copy of ``obj``, its encoding): for values from outside (JSON) that
    are rarely in key order, so ``encode``'s quick check would only add to the cost; the
    copy decodes from the bytes unchanged, so a caller can check it instead of decoding."""
    try:
        value = _canonical(obj, 0)
        return value, _pack(value)
    except (OverflowError, UnicodeEncodeError, ValueError, TypeError) as exc:
        raise CodecError(f"cannot encode: {exc}") from exc


def _canonical(obj: object, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH}")
    # Exact types first (the common case, one comparison each); subclasses and buffers
    # take the general checks below.
    kind = type(obj)
    if kind is str or kind is bytes or kind is bool or obj is None:
        return obj
    if kind is int:
        if not _INT_MIN <= obj <= _INT_MAX:  # type: ignore[operator]
            raise CodecError(f"integer {obj} outside -2**63 .. 2**64-1")
        return obj
    if kind is dict:
        for key in obj:  # type: ignore[attr-defined]
            if type(key) is not str:
                raise CodecError(f"map key {key!r} is not a str")
        # Sorting str by code point equals sorting their UTF-8 encodings byte-wise.
        return {key: _canonical(obj[key], depth + 1) for key in sorted(obj)}  # type: ignore[index, call-overload]
    if kind is list or kind is tuple:
        return [_canonical(item, depth + 1) for item in obj]  # type: ignore[attr-defined]
    if isinstance(obj, (bool, str, bytes)):
        return obj
    if isinstance(obj, int):
        if not _INT_MIN <= obj <= _INT_MAX:
            raise CodecError(f"integer {obj} outside -2**63 .. 2**64-1")
        return obj
    if isinstance(obj, dict):
        return _canonical(dict(obj), depth)
    if isinstance(obj, (list, tuple)):
        return _canonical(list(obj), depth)
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise CodecError(f"type {type(obj).__name__} is not in the canonical data model")


def decode(data: object, *, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """Decode canonical bytes; raise CodecError for anything ``encode`` would not produce."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise CodecError(f"input of {len(data)} bytes exceeds the limit of {max_bytes}")
    if not data:
        raise CodecError("empty input")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,
            ext_hook=_reject_ext,
        )
    except CodecError:
        raise
    except msgpack.ExtraData as exc:
        raise CodecError("trailing bytes after the value") from exc
    except msgpack.StackError as too_deep:
        raise CodecError(f"nesting deeper than {MAX_DEPTH}") from too_deep
    except (ValueError, UnicodeDecodeError, TypeError, msgpack.UnpackException) as undecodable:
        raise CodecError(f"not decodable: {undecodable}") from undecodable
    if not (type(obj) in _CONTAINERS and plain_sorted(obj, 0)):
        _check(obj, 0)  # raises the precise error
    # Every remaining difference (long forms, duplicate keys collapsed by the dict) shows
    # up as a re-encoding that differs from the input.
    if _pack(obj) != data:
        raise CodecError("not canonical: a value is not in its shortest form or a key repeats")
    return obj


def decode_vouched(data: bytes, vouch: Callable[[Any], bool]) -> Any | None:
    """Decode ``data`` when ``vouch`` accepts the value and it re-encodes to ``data``.

    ``vouch`` must return True only for values ``plain_sorted`` would accept (str
    keys in order, data-model types, depth within MAX_DEPTH); a caller that checks a
    value's exact shape anyway can fold those checks into one walk. None means "no
    verdict": the caller then runs ``decode`` for the precise error (or a late yes).
    """
    try:
        obj = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=False, ext_hook=_reject_ext
        )
    except (CodecError, ValueError, TypeError, msgpack.UnpackException):
        return None
    if not vouch(obj) or _pack(obj) != data:
        return None
    return obj


def _reject_ext(code: int, data: bytes) -> object:
    raise CodecError(f"ext type {code} is not allowed")


_CONTAINERS = (dict, list)


def plain_sorted(container: Any, depth: int, scalars: frozenset[type] = _SCALARS) -> bool:
    """True only if every map in ``container`` has str keys in canonical order, every
    other value is of a type in ``scalars``, and no container lies below MAX_DEPTH.

    A yes/no walk for hot paths (scalars judged inline, not by a call each): with the
    default ``scalars`` it accepts exactly what ``_check`` accepts, so anything it
    refuses can go through ``_check`` for the precise error.
    """
    if depth >= MAX_DEPTH:
        return not container
    if type(container) is dict:
        previous = ""
        for key in container:
            # Keys are unique within a dict, so "not after the previous" means unsorted.
            if type(key) is not str or key < previous:
                return False
            previous = key
        container = container.values()
    for child in container:
        kind = type(child)
        if kind is dict or kind is list:
            if not plain_sorted(child, depth + 1, scalars):
                return False
        elif kind not in scalars:
            return False
    return True


def _check(obj: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH}")
    kind = type(obj)
    if kind is dict:
        previous: str | None = None
        for key, value in obj.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise CodecError(f"map key {key!r} is not a str")
            if previous is not None and key <= previous:
                raise CodecError(f"map keys not sorted: {key!r} after {previous!r}")
            previous = key
            _check(value, depth + 1)
    elif kind is list:
        for item in obj:  # type: ignore[attr-defined]
            _check(item, depth + 1)
    elif kind is float:
        raise CodecError("floats are not allowed")
    elif kind not in _SCALARS:
        # msgpack decodes ext -1 to a Timestamp without calling ext_hook.
        raise CodecError(f"type {kind.__name__} is not allowed")
