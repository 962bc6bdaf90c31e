"""Go text/template: the built-in functions, docker's extra ones, and ``printf``."""

from __future__ import annotations

import inspect
import re
import unicodedata
from typing import Any, Callable

from imgctl.cli.format.lexer import _go_quote
from imgctl.cli.format.values import (
    _CallError,
    _go_float_v,
    go_json,
    _go_sprint,
    _go_sprint_value,
    _go_type,
    RowContext,
)


# ---------------------------------------------------------------------------
# Go text/template: functions

def _truth(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, RowContext):
        return True  # a non-nil struct pointer
    return bool(v)


def _basic_kind(v: Any) -> str:
    if v is None:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    return "other"


def _fn_eq(arg1, *others):
    if not others:
        raise _CallError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in others:
        k2 = _basic_kind(arg)
        truth = False
        if k1 != k2:
            if arg1 is not None and arg is not None:
                raise _CallError("incompatible types for comparison")
        elif k1 == "other":
            if isinstance(arg1, (list, tuple, dict)) or isinstance(arg, (list, tuple, dict)):
                raise _CallError(
                    f"non-comparable type {_go_sprint_value(arg)}: {_go_type(arg)}"
                )
            truth = arg1 == arg
        else:
            truth = arg1 == arg
        if truth:
            return True
    return False


def _fn_ne(a, b):
    return not _fn_eq(a, b)


def _fn_lt(a, b):
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 in ("invalid", "other") or k2 in ("invalid", "other"):
        raise _CallError("invalid type for comparison")
    if k1 != k2:
        raise _CallError("incompatible types for comparison")
    if k1 in ("bool", "complex"):
        raise _CallError("invalid type for comparison")
    return a < b


def _fn_le(a, b):
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a, b):
    return not _fn_le(a, b)


def _fn_ge(a, b):
    return not _fn_lt(a, b)


def _fn_not(a):
    return not _truth(a)


def _fn_len(a):
    if a is None:
        raise _CallError("len of nil pointer")
    if isinstance(a, str):
        return len(a.encode("utf-8", "surrogatepass"))
    if isinstance(a, (list, tuple, dict, bytes)):
        return len(a)
    raise _CallError(f"len of type {_go_type(a)}")


def _fn_index(item, *indexes):
    if item is None:
        raise _CallError("index of untyped nil")
    for idx in indexes:
        if item is None:
            raise _CallError("index of nil pointer")
        if isinstance(item, (list, tuple, str, bytes)):
            if idx is None:
                raise _CallError("cannot index slice/array with nil")
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise _CallError(f"cannot index slice/array with type {_go_type(idx)}")
            seq = item.encode() if isinstance(item, str) else item
            if idx < 0 or idx >= len(seq):
                raise _CallError(f"index out of range: {idx}")
            item = seq[idx]
        elif isinstance(item, dict) and not isinstance(item, RowContext):
            if idx is None:
                raise _CallError("value is nil; should be of type " + _map_key_type(item))
            key_type = _map_key_type(item)
            if _go_type(idx) != key_type and key_type != "interface {}":
                raise _CallError(f"value has type {_go_type(idx)}; should be {key_type}")
            if idx in item:
                item = item[idx]
            else:
                item = _zero_of(item.values())
        else:
            raise _CallError(f"can't index item of type {_go_type(item)}")
    return item


def _map_key_type(m: dict) -> str:
    """A Go map's key type as its keys show it: ``string`` when empty or all strings."""
    types = {_go_type(k) for k in m}
    if not types or types == {"string"}:
        return "string"
    return types.pop() if len(types) == 1 else "interface {}"


def _zero_of(values) -> Any:
    """The zero value of a Go map's element type, guessed from its values: "" for strings,
    0 for ints, false for bools, else nil."""
    types = {type(x) for x in values}
    if len(types) == 1:
        t = types.pop()
        if t in (str, int, float, bool):
            return t()
    return None


def _fn_slice(item, *indexes):
    if item is None:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _CallError("cannot 3-index slice a string")
        seq: Any = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, (list, tuple)):
        seq = list(item)
    else:
        raise _CallError(f"can't slice item of type {_go_type(item)}")
    idx = [0, len(seq), len(seq)]
    for i, x in enumerate(indexes):  # Go's indexArg against the capacity (= length here)
        if x is None:
            raise _CallError("cannot index slice/array with nil")
        if isinstance(x, bool) or not isinstance(x, int):
            raise _CallError(f"cannot index slice/array with type {_go_type(x)}")
        if x < 0 or x > len(seq):
            raise _CallError(f"index out of range: {x}")
        idx[i] = x
    if idx[0] > idx[1]:
        raise _CallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:  # item[i:j:k] needs i <= j <= k
        raise _CallError(f"invalid slice index: {idx[1]} > {idx[2]}")
    res = seq[idx[0] : idx[1]]
    if isinstance(item, str):
        return res.decode("utf-8", "replace")
    return res


def _fn_print(*args):
    return _go_sprint(list(args))


def _fn_println(*args):
    return " ".join(_go_sprint_value(a) for a in args) + "\n"


def _fn_printf(fmt, *args):
    return _go_sprintf(fmt, list(args))


def _eval_args_str(args) -> str:
    """text/template's evalArgs (html, js, urlquery): fmt.Sprint of the arguments, where a
    missing or nil value reads ``<no value>`` (printableValue), not ``<nil>``."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _go_sprint(["<no value>" if a is None else a for a in args])


def _fn_html(*args):
    s = _eval_args_str(args)
    return (
        s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
        .replace(">", "&gt;").replace('"', "&#34;").replace("\x00", "\ufffd")
    )


def _fn_js(*args):
    s = _eval_args_str(args)
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append('\\"')
        elif ch in "<>&=":
            out.append("\\u%04X" % ord(ch))
        elif ord(ch) < 0x20 or (ord(ch) >= 0x80 and not ch.isprintable()):
            out.append("\\u%04X" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def _fn_urlquery(*args):
    from urllib.parse import quote_plus

    return quote_plus(_eval_args_str(args), safe="")


def _per_rune(s: str, conv) -> str:
    out = []
    for c in s:
        m = conv(c)
        out.append(m if len(m) == 1 else c)
    return "".join(out)


def _fn_upper(s):
    return s.upper() if s.isascii() else _per_rune(s, str.upper)


def _fn_lower(s):
    return s.lower() if s.isascii() else _per_rune(s, str.lower)


def _title_sep(c: str) -> bool:
    if ord(c) <= 0x7F:
        return not (c.isalnum() or c == "_")
    if c.isalpha() or unicodedata.category(c) == "Nd":
        return False
    return c.isspace()


def _fn_title(s):
    # strings.Title: upper-case the first letter of each word.
    out = []
    prev = " "
    for c in s:
        if _title_sep(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _fn_split(s, sep):
    if sep == "":
        return list(s)
    return s.split(sep)


def _fn_join(elems, sep):
    if elems is None:
        return ""
    if isinstance(elems, (list, tuple)):
        return sep.join(x if isinstance(x, str) else _go_sprint_value(x) for x in elems)
    if isinstance(elems, dict) and not isinstance(elems, RowContext):
        return sep.join(sorted(_go_sprint_value(x) for x in elems.values()))
    raise _CallError(f"expected slice, got {_go_type(elems)}")


def _fn_pad(source, prefix, suffix):
    if source == "":
        return source
    if prefix < 0 or suffix < 0:
        raise _CallError("strings: negative Repeat count")
    return " " * prefix + source + " " * suffix


def _fn_truncate(source, length):
    b = source.encode("utf-8", "surrogatepass")
    if len(b) < length:
        return source
    if length < 0:
        raise _CallError(f"runtime error: slice bounds out of range [:{length}]")
    return b[:length].decode("utf-8", "replace")


def _fn_json(v):
    return go_json(v)


# name -> (parameter kinds, variadic kind or None, implementation)
# kinds: "any", "str", "int"
_BASIC_FUNCS: dict[str, tuple[tuple[str, ...], str | None, Callable[..., Any]]] = {
    # docker/cli templates.basicFunctions
    "json": (("any",), None, _fn_json),
    "split": (("str", "str"), None, _fn_split),
    "join": (("any", "str"), None, _fn_join),
    "title": (("str",), None, _fn_title),
    "lower": (("str",), None, _fn_lower),
    "upper": (("str",), None, _fn_upper),
    "pad": (("str", "int", "int"), None, _fn_pad),
    "truncate": (("str", "int"), None, _fn_truncate),
    # Go text/template builtins
    "and": (("any",), "any", None),  # special-cased (short circuit)
    "or": (("any",), "any", None),
    "not": (("any",), None, _fn_not),
    "len": (("any",), None, _fn_len),
    "index": (("any",), "any", _fn_index),
    "slice": (("any",), "any", _fn_slice),
    "print": ((), "any", _fn_print),
    "printf": (("str",), "any", _fn_printf),
    "println": ((), "any", _fn_println),
    "eq": (("any",), "any", _fn_eq),
    "ne": (("any", "any"), None, _fn_ne),
    "lt": (("any", "any"), None, _fn_lt),
    "le": (("any", "any"), None, _fn_le),
    "gt": (("any", "any"), None, _fn_gt),
    "ge": (("any", "any"), None, _fn_ge),
    "html": ((), "any", _fn_html),
    "js": ((), "any", _fn_js),
    "urlquery": ((), "any", _fn_urlquery),
    "call": (("any",), "any", None),  # special-cased: calls its first argument
}


_ANNOTATION_KINDS = {str: "str", "str": "str", int: "int", "int": "int"}


def _py_func_spec(fn: Callable[..., Any]) -> tuple[tuple[str, ...], str | None, Callable[..., Any]]:
    """A Python callable as a template function (Go ``FuncMap`` entry or func value):
    positional parameters are its arguments, ``*args`` makes it variadic, and a ``str`` /
    ``int`` annotation type-checks the argument as Go's parameter type would (anything
    else takes any value).  An exception it raises is the call's error."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ((), "any", fn)
    params: list[str] = []
    variadic = None
    for p in sig.parameters.values():
        kind = _ANNOTATION_KINDS.get(p.annotation, "any")
        if p.kind == p.VAR_POSITIONAL:
            variadic = kind
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            params.append(kind)

    def call(*args):
        try:
            return fn(*args)
        except _CallError:
            raise
        except Exception as e:  # the Go function's error result (or a recovered panic)
            raise _CallError(str(e)) from None

    return tuple(params), variadic, call


def _is_func(v: Any) -> bool:
    """A Go func value: a Python function, builtin or bound method (not a callable object)."""
    return inspect.isfunction(v) or inspect.ismethod(v) or inspect.isbuiltin(v)


def _ident(v, *_):
    return v


# docker/cli templates.HeaderFunctions: used to render the header row of a
# table so the column names come out untouched ("pad" is deliberately real).
_HEADER_FUNCS = dict(_BASIC_FUNCS)
_HEADER_FUNCS.update(
    {
        "json": (("str",), None, _ident),
        "split": (("str", "str"), None, _ident),
        "join": (("str", "str"), None, _ident),
        "title": (("str",), None, _ident),
        "lower": (("str",), None, _ident),
        "upper": (("str",), None, _ident),
        "truncate": (("str", "int"), None, _ident),
    }
)


# ---------------------------------------------------------------------------
# printf (a practical subset of Go's fmt)

_VERB_RE = re.compile(r"%([+\-# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.S)


def _bad_verb(verb: str, v: Any) -> str:
    if v is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type(v)}={_go_sprint_value(v)})"


def _pad_str(s: str, width: int | None, flags: str, zero_ok: bool = False) -> str:
    if width is None:
        return s
    n = width - len(s)
    if n <= 0:
        return s
    if "-" in flags:
        return s + " " * n
    if "0" in flags and zero_ok:
        if s[:1] in "+-":
            return s[0] + "0" * n + s[1:]
        return "0" * n + s
    return " " * n + s


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, v: Any) -> str:
    if verb == "s" and isinstance(v, (list, tuple)):
        return _pad_str(
            "[" + " ".join(_fmt_one("s", "", None, prec, x) for x in v) + "]", width, flags
        )
    if verb == "v":
        s = _go_sprint_value(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and "+" in flags and not s.startswith("-"):
            s = "+" + s
        return _pad_str(s, width, flags, zero_ok=isinstance(v, (int, float)))
    if verb == "T":
        return _pad_str(_go_type(v), width, flags)
    if isinstance(v, bool):
        if verb == "t":
            return _pad_str("true" if v else "false", width, flags)
        return _bad_verb(verb, v)
    if isinstance(v, int):
        if verb in ("d", "b", "o", "x", "X"):
            base = {"d": 10, "b": 2, "o": 8, "x": 16, "X": 16}[verb]
            digits = format(abs(v), {10: "d", 2: "b", 8: "o", 16: "x"}[base])
            if verb == "X":
                digits = digits.upper()
            if prec is not None:
                digits = digits.rjust(prec, "0")
            if "#" in flags:
                digits = {2: "0b", 8: "0", 16: "0x" if verb == "x" else "0X"}.get(base, "") + digits
            sign = "-" if v < 0 else ("+" if "+" in flags else (" " if " " in flags else ""))
            return _pad_str(sign + digits, width, flags, zero_ok=prec is None)
        if verb == "c":
            return _pad_str(chr(v), width, flags)
        if verb == "q":
            return _pad_str("'" + _go_quote(chr(v))[1:-1].replace("'", "\\'") + "'", width, flags)
        if verb == "U":
            return _pad_str("U+%04X" % v, width, flags)
        return _bad_verb(verb, v)
    if isinstance(v, float):
        if verb in "eEfFgG":
            if verb in "gG" and prec is None:
                s = _go_float_v(v)
                if verb == "G":
                    s = s.upper()
            else:
                p = 6 if prec is None else prec
                s = ("%." + str(p) + verb) % v
            if "+" in flags and not s.startswith("-"):
                s = "+" + s
            return _pad_str(s, width, flags, zero_ok=True)
        return _bad_verb(verb, v)
    if isinstance(v, complex):
        # fmt's fmtComplex: "(" real imag "i)", each part formatted with the verb, width and
        # precision, the imaginary part always signed
        if verb in "veEfFgG":
            fv = "g" if verb == "v" else verb
            re_part = _fmt_one(fv, flags, width, prec, v.real)
            im_part = _fmt_one(fv, flags.replace("+", "") + "+", width, prec, v.imag)
            return f"({re_part}{im_part}i)"
        return _bad_verb(verb, v)
    if isinstance(v, str):
        if verb == "s":
            s = v if prec is None else v[:prec]
            return _pad_str(s, width, flags)
        if verb == "q":
            s = v if prec is None else v[:prec]
            if "#" in flags and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
                return _pad_str("`" + s + "`", width, flags)
            return _pad_str(_go_quote(s), width, flags)
        if verb in "xX":
            h = v.encode("utf-8", "surrogatepass").hex()
            return _pad_str(h.upper() if verb == "X" else h, width, flags)
        return _bad_verb(verb, v)
    if v is None:
        return _bad_verb(verb, v)
    if verb == "s":
        return _pad_str(_go_sprint_value(v), width, flags)
    return _bad_verb(verb, v)


def _go_sprintf(fmt: str, args: list[Any]) -> str:
    out = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        m = _VERB_RE.match(fmt, j)
        assert m is not None
        flags, w, p, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        i = m.end()
        if verb == "":
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        width = prec = None
        if w == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                argi += 1
            else:
                out.append("%!(BADWIDTH)")
        elif w:
            width = int(w)
        if p is not None:
            if p == "*":
                if argi < len(args) and isinstance(args[argi], int):
                    prec = args[argi]
                    argi += 1
                else:
                    out.append("%!(BADPREC)")
            else:
                prec = int(p) if p else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, flags, width, prec, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{_go_type(a)}={_go_sprint_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
