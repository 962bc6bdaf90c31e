"""Go values as Go prints them: fmt's ``%v`` and encoding/json (the ``json`` function, ``{{json .}}``)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any


# ---------------------------------------------------------------------------
# Go value formatting helpers (fmt %v, encoding/json)


class RowContext(dict):
    """A list row as docker's ``*formatter.xxxContext``: a struct pointer.

    Unknown fields are an error (``can't evaluate field X in type T``), it is
    always "true" in ``{{if}}``, and ``{{json .}}`` marshals it like docker's
    ``MarshalJSON`` (keys sorted, ``<>&`` escaped).
    """

    __slots__ = ("type_name",)

    def __init__(self, data=(), type_name: str = "*formatter.context") -> None:
        super().__init__(data)
        self.type_name = type_name


class GoMap(dict):
    """A Go map (e.g. labels): a missing key reads as ``<no value>`` rather than
    an error, and ``json`` sorts its keys."""

    __slots__ = ()


class _HeaderMap(dict):
    """docker's SubHeaderContext (map[string]string) used to render a table header."""

    __slots__ = ()


def _go_type(v: Any) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, str):
        return "string"
    if isinstance(v, RowContext):
        return v.type_name
    if isinstance(v, _HeaderMap):
        return "formatter.SubHeaderContext"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, bytes):
        return "[]uint8"
    return type(v).__name__


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of abs(f) and the decimal point position."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    lead = len(ip + fp) - len((ip + fp).lstrip("0"))
    dp = len(ip) + e - lead
    digits = digits.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e(neg: bool, digits: str, dp: int, upper: bool = False) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return ("-" if neg else "") + mant + ("E" if upper else "e") + sign + "%02d" % abs(exp)


def _fmt_f(neg: bool, digits: str, dp: int) -> str:
    if dp <= 0:
        s = "0." + "0" * (-dp) + digits
    elif dp >= len(digits):
        s = digits + "0" * (dp - len(digits))
    else:
        s = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + s


def _go_float_v(f: float) -> str:
    """fmt %v of a float64 (strconv 'g', shortest): 1.5, 100000, 1e+06, 1e-05."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    neg = str(f).startswith("-")
    if f == 0:
        return "-0" if neg else "0"
    digits, dp = _float_digits(f)
    exp = dp - 1
    if exp < -4 or exp >= 6:  # shortest 'g' decides with precision 6
        return _fmt_e(neg, digits, dp)
    return _fmt_f(neg, digits, dp)


def _go_sprint_value(v: Any) -> str:
    """fmt.Sprint of one operand (%v)."""
    if v is None:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float_v(v)
    if isinstance(v, complex):  # fmt's %v of a complex128: (1+2i)
        imag = _go_float_v(v.imag)
        return f"({_go_float_v(v.real)}{'' if imag[0] in '+-' else '+'}{imag}i)"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _json_key(kv[0]))
        return "map[" + " ".join(
            f"{_go_sprint_value(k)}:{_go_sprint_value(x)}" for k, x in items
        ) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_go_sprint_value(x) for x in v) + "]"
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    if dataclasses.is_dataclass(v) and type(v).__str__ is object.__str__:
        return "{" + " ".join(_go_sprint_value(getattr(v, f.name)) for f in dataclasses.fields(v)) + "}"
    return str(v)


def _go_sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    prev_str = True
    for i, a in enumerate(args):
        is_str = isinstance(a, str)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(_go_sprint_value(a))
        prev_str = is_str
    return "".join(out)


_JSON_ALSO_ESCAPED = frozenset(range(0x7F, 0xA0)) | {0x061C, 0x200E, 0x200F, 0x2028, 0x2029} | frozenset(
    range(0x202A, 0x202F)
) | frozenset(range(0x2066, 0x206A))


def _json_string(s: str, escape_html: bool) -> str:
    """Go's encoding/json string, and more: DEL, C1 controls and the bidirectional
    controls are escaped too (Go writes them raw; the same JSON value either way)."""
    s = getattr(s, "raw", s)
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if cp < 0x80:
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif cp < 0x20:
                out.append(
                    {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(
                        ch, "\\u%04x" % cp
                    )
                )
            elif escape_html and ch in "<>&":
                out.append("\\u%04x" % cp)
            elif cp == 0x7F:
                out.append("\\u007f")
            else:
                out.append(ch)
        elif cp in _JSON_ALSO_ESCAPED:
            out.append("\\u%04x" % cp)
        elif 0xD800 <= cp <= 0xDFFF:
            out.append("\\ufffd")  # invalid UTF-8 becomes U+FFFD in Go
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise _CallError("json: unsupported value: " + _go_float_v(f))
    neg = str(f).startswith("-")
    if f == 0:
        return "-0" if neg else "0"
    digits, dp = _float_digits(f)
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        s = _fmt_e(neg, digits, dp)
        # encoding/json turns e-07 into e-7
        m = re.search(r"e([+-])0(\d)$", s)
        if m and m.group(1) == "-":
            s = s[: m.start()] + "e-" + m.group(2)
        return s
    return _fmt_f(neg, digits, dp)


_JSON_TEXT_UNSAFE_RE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_text_safe(text: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` escaped as :func:`go_json`
    escapes it: DEL, C1 and bidirectional controls as ``\\uXXXX``, a lone surrogate as
    ``\\ufffd`` (Go's replacement for invalid UTF-8).  These characters can only occur
    inside JSON strings, so the value stays the same."""
    return _JSON_TEXT_UNSAFE_RE.sub(
        lambda m: "\\ufffd" if 0xD800 <= ord(m.group(0)) <= 0xDFFF else "\\u%04x" % ord(m.group(0)), text
    )


def _json_key(k: Any) -> str:
    return getattr(k, "raw", k) if isinstance(k, str) else str(k)


def _json_encode(v: Any, escape_html: bool) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return _json_string(v, escape_html)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, complex):
        raise _CallError("json: unsupported type: complex128")
    if isinstance(v, RowContext):
        # docker's MarshalJSON: json.Marshal of a map -> sorted, HTML-escaped
        items = sorted(v.items(), key=lambda kv: _json_key(kv[0]))
        return "{" + ",".join(
            _json_string(_json_key(k), True) + ":" + _json_encode(x, True) for k, x in items
        ) + "}"
    if isinstance(v, dict):
        items = list(v.items())
        if isinstance(v, (GoMap, _HeaderMap)):
            items.sort(key=lambda kv: _json_key(kv[0]))
        return "{" + ",".join(
            _json_string(_json_key(k), escape_html) + ":" + _json_encode(x, escape_html)
            for k, x in items
        ) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_json_encode(x, escape_html) for x in v) + "]"
    if isinstance(v, bytes):
        import base64

        return '"' + base64.b64encode(v).decode("ascii") + '"'
    return _json_string(str(v), escape_html)


def go_json(v: Any) -> str:
    """docker's template ``json`` function (compact, no HTML escaping except
    inside a :class:`RowContext`, which marshals like docker's contexts)."""
    return _json_encode(v, False)


class _CallError(Exception):
    """An error returned by a template function (``error calling X: ...``)."""
