"""Go text/template: the lexer (items, delimiters, quoting)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Callable


# ---------------------------------------------------------------------------
# Go text/template: lexer

_MISSING = object()

(
    T_ERROR, T_BOOL, T_CHAR, T_CHARCONST, T_COMPLEX, T_ASSIGN, T_DECLARE, T_EOF,
    T_FIELD, T_IDENT, T_LEFT, T_LPAREN, T_NUMBER, T_PIPE, T_RAWSTRING, T_RIGHT,
    T_RPAREN, T_SPACE, T_STRING, T_TEXT, T_VARIABLE,
    T_KEYWORD,  # keywords after this
    T_BLOCK, T_BREAK, T_CONTINUE, T_DOT, T_DEFINE, T_ELSE, T_END, T_IF, T_NIL,
    T_RANGE, T_TEMPLATE, T_WITH,
) = range(34)

_KEYWORDS = {
    ".": T_DOT, "block": T_BLOCK, "break": T_BREAK, "continue": T_CONTINUE,
    "define": T_DEFINE, "else": T_ELSE, "end": T_END, "if": T_IF,
    "range": T_RANGE, "nil": T_NIL, "template": T_TEMPLATE, "with": T_WITH,
}

_SPACE = " \t\r\n"


class _Tok:
    __slots__ = ("typ", "val", "pos", "line")

    def __init__(self, typ: int, val: str, pos: int, line: int) -> None:
        self.typ, self.val, self.pos, self.line = typ, val, pos, line

    def __str__(self) -> str:
        if self.typ == T_EOF:
            return "EOF"
        if self.typ == T_ERROR:
            return self.val
        if self.typ > T_KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                        "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append("\\x%02x" % cp)
        elif cp < 0x80 or (ch.isprintable() and ch != "\u00a0") or ch == " ":
            if 0xD800 <= cp <= 0xDFFF:
                out.append("\\ufffd")
            else:
                out.append(ch)
        elif cp < 0x10000:
            out.append("\\u%04x" % cp)
        else:
            out.append("\\U%08x" % cp)
    out.append('"')
    return "".join(out)


def _fmt_U(ch: str) -> str:
    """fmt %#U: U+0023 '#'."""
    cp = ord(ch)
    if ch.isprintable():
        return "U+%04X '%s'" % (cp, ch)
    return "U+%04X" % cp


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or unicodedata.category(ch) == "Nd"


class _Lexer:
    """Go's text/template lexer (delimiters, trim markers, comments)."""

    def __init__(self, text: str, left: str = "{{", right: str = "}}") -> None:
        self.s = text
        self.left, self.right = left, right
        self.pos = 0
        self.start = 0
        self.paren = 0
        self.items: list[_Tok] = []
        self.state: Callable[[], Any] | None = self.lex_text
        self.line = 1
        self.start_line = 1

    # -- plumbing
    def next_item(self) -> _Tok:
        while not self.items:
            if self.state is None:
                return _Tok(T_EOF, "", len(self.s), self.line)
            self.state = self.state()
        return self.items.pop(0)

    def nxt(self) -> str:
        if self.pos >= len(self.s):
            self.pos += 1  # so that backup() is symmetric
            return ""
        ch = self.s[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def backup(self) -> None:
        self.pos -= 1
        if self.pos < len(self.s) and self.s[self.pos] == "\n":
            self.line -= 1

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < len(self.s) else ""

    def emit(self, typ: int) -> None:
        self.items.append(_Tok(typ, self.s[self.start : self.pos], self.start, self.start_line))
        self.start = self.pos
        self.start_line = self.line

    def ignore(self) -> None:
        self.line += self.s.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def error(self, msg: str) -> None:
        self.items.append(_Tok(T_ERROR, msg, self.start, self.start_line))
        return None

    def at_right_delim(self) -> tuple[bool, bool]:
        rest = self.s[self.pos :]
        if len(rest) >= 2 and rest[0] in _SPACE and rest[1] == "-" and rest[2:].startswith(self.right):
            return True, True
        if rest.startswith(self.right):
            return True, False
        return False, False

    # -- states
    def lex_text(self):
        x = self.s.find(self.left, self.pos)
        if x >= 0:
            end = x
            after = self.s[x + len(self.left) :]
            if len(after) >= 2 and after[0] == "-" and after[1] in _SPACE:
                end = len(self.s[:x].rstrip(_SPACE))
                if end < self.start:
                    end = self.start
            if end > self.start:
                self.line += self.s.count("\n", self.pos, end)
                self.pos = end
                self.emit(T_TEXT)
            self.pos = x
            self.ignore()
            return self.lex_left_delim
        self.line += self.s.count("\n", self.pos)
        self.pos = len(self.s)
        if self.pos > self.start:
            self.emit(T_TEXT)
        self.items.append(_Tok(T_EOF, "", self.pos, self.line))
        return None

    def lex_left_delim(self):
        self.pos += len(self.left)
        rest = self.s[self.pos :]
        trim = len(rest) >= 2 and rest[0] == "-" and rest[1] in _SPACE
        after = 2 if trim else 0
        if self.s.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        self.emit(T_LEFT)
        self.pos += after
        self.ignore()
        self.paren = 0
        return self.lex_inside

    def lex_comment(self):
        self.pos += 2
        i = self.s.find("*/", self.pos)
        if i < 0:
            return self.error("unclosed comment")
        self.pos = i + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.error("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += len(self.right)
        if trim:
            self.pos = len(self.s) - len(self.s[self.pos :].lstrip(_SPACE))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):
        _, trim = self.at_right_delim()
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(self.right)
        self.emit(T_RIGHT)
        if trim:
            self.pos = len(self.s) - len(self.s[self.pos :].lstrip(_SPACE))
            self.ignore()
        return self.lex_text

    def lex_inside(self):
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren == 0:
                return self.lex_right_delim
            return self.error("unclosed left paren")
        r = self.nxt()
        if r == "":
            return self.error("unclosed action")
        if r in _SPACE:
            self.backup()
            return self.lex_space
        if r == "=":
            self.emit(T_ASSIGN)
        elif r == ":":
            if self.nxt() != "=":
                return self.error("expected :=")
            self.emit(T_DECLARE)
        elif r == "|":
            self.emit(T_PIPE)
        elif r == '"':
            return self.lex_quote
        elif r == "`":
            return self.lex_raw_quote
        elif r == "$":
            return self.lex_variable
        elif r == "'":
            return self.lex_char
        elif r == "." and not ("0" <= self.peek() <= "9" and self.peek() != ""):
            return self.lex_field
        elif r in "+-." or "0" <= r <= "9":
            self.backup()
            return self.lex_number
        elif _is_alnum(r):
            self.backup()
            return self.lex_identifier
        elif r == "(":
            self.emit(T_LPAREN)
            self.paren += 1
        elif r == ")":
            self.paren -= 1
            if self.paren < 0:  # the error in place of the ")" (Go's lexer)
                return self.error("unexpected right paren")
            self.emit(T_RPAREN)
        elif ord(r) < 0x80 and r.isprintable():
            self.emit(T_CHAR)
        else:
            return self.error("unrecognized character in action: " + _fmt_U(r))
        return self.lex_inside

    def lex_space(self):
        num = 0
        while self.peek() and self.peek() in _SPACE:
            self.nxt()
            num += 1
        rest = self.s[self.pos - 1 :]
        if len(rest) >= 2 and rest[0] in _SPACE and rest[1] == "-" and rest[2:].startswith(self.right):
            self.backup()
            if num == 1:
                return self.lex_inside
        self.emit(T_SPACE)
        return self.lex_inside

    def lex_identifier(self):
        while True:
            r = self.nxt()
            if r and _is_alnum(r):
                continue
            self.backup()
            word = self.s[self.start : self.pos]
            if not self.at_terminator():
                return self.error("bad character " + _fmt_U(r) if r else "bad character")
            if word in _KEYWORDS and _KEYWORDS[word] > T_KEYWORD:
                self.emit(_KEYWORDS[word])
            elif word[0] == ".":
                self.emit(T_FIELD)
            elif word in ("true", "false"):
                self.emit(T_BOOL)
            else:
                self.emit(T_IDENT)
            return self.lex_inside

    def lex_field(self):
        return self.lex_field_or_variable(T_FIELD)

    def lex_variable(self):
        if self.at_terminator():
            self.emit(T_VARIABLE)
            return self.lex_inside
        return self.lex_field_or_variable(T_VARIABLE)

    def lex_field_or_variable(self, typ: int):
        if self.at_terminator():
            self.emit(T_VARIABLE if typ == T_VARIABLE else T_DOT)
            return self.lex_inside
        r = ""
        while True:
            r = self.nxt()
            if not (r and _is_alnum(r)):
                self.backup()
                break
        if not self.at_terminator():
            return self.error("bad character " + _fmt_U(r))
        self.emit(typ)
        return self.lex_inside

    def at_terminator(self) -> bool:
        r = self.peek()
        if r == "" or r in _SPACE or r in ".,|:()":
            return True
        return self.s.startswith(self.right, self.pos)

    def lex_char(self):
        return self._lex_escaped("'", "character constant", T_CHARCONST)

    def _lex_escaped(self, close: str, what: str, typ):
        """The rest of a '...' or "..." literal, backslash escapes included (Go's lexChar/lexQuote)."""
        while True:
            r = self.nxt()
            if r == "\\":
                r2 = self.nxt()
                if r2 and r2 != "\n":
                    continue
                return self.error(f"unterminated {what}")
            if r in ("", "\n"):
                return self.error(f"unterminated {what}")
            if r == close:
                break
        self.emit(typ)
        return self.lex_inside

    _NUM_RE = re.compile(
        r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
        r"|0[oO][0-7_]*|0[bB][01_]*"
        r"|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?"
    )

    def lex_number(self):
        m = self._NUM_RE.match(self.s, self.pos)
        end = m.end() if m else self.pos
        self.pos = end
        if self.peek() and _is_alnum(self.peek()):
            self.pos += 1
            return self.error("bad number syntax: " + _go_quote(self.s[self.start : self.pos]))
        if self.peek() in ("+", "-") and self.peek():
            m2 = self._NUM_RE.match(self.s, self.pos)
            self.pos = m2.end() if m2 else self.pos
            if not self.s[: self.pos].endswith("i"):
                return self.error("bad number syntax: " + _go_quote(self.s[self.start : self.pos]))
            self.emit(T_COMPLEX)
            return self.lex_inside
        self.emit(T_NUMBER)
        return self.lex_inside

    def lex_quote(self):
        return self._lex_escaped('"', "quoted string", T_STRING)

    def lex_raw_quote(self):
        while True:
            r = self.nxt()
            if r == "":
                return self.error("unterminated raw quoted string")
            if r == "`":
                break
        self.emit(T_RAWSTRING)
        return self.lex_inside


_TOKEN_NAMES = {
    T_ERROR: "error", T_BOOL: "bool", T_CHAR: "char", T_CHARCONST: "charconst",
    T_COMPLEX: "complex", T_ASSIGN: "=", T_DECLARE: ":=", T_EOF: "EOF", T_FIELD: "field",
    T_IDENT: "identifier", T_LEFT: "left delim", T_LPAREN: "(", T_NUMBER: "number",
    T_PIPE: "pipe", T_RAWSTRING: "raw string", T_RIGHT: "right delim", T_RPAREN: ")",
    T_SPACE: "space", T_STRING: "string", T_TEXT: "text", T_VARIABLE: "variable",
    **{typ: word for word, typ in _KEYWORDS.items()},
}


def template_tokens(text: str, delims: tuple[str, str] = ("{{", "}}")) -> list[tuple[str, int, str, int]]:
    """The lexer's items for ``text`` as Go's parse.lex emits them (comments are skipped,
    as the parser's lexer does): ``(kind, byte offset, value, line)`` up to and including
    the EOF or the first error, kinds named as Go's lex_test.go names them."""
    lex = _Lexer(text, *delims)
    out = []
    while True:
        tok = lex.next_item()
        pos = len(text[: tok.pos].encode("utf-8", "surrogatepass"))
        out.append((_TOKEN_NAMES[tok.typ], pos, tok.val, tok.line))
        if tok.typ in (T_EOF, T_ERROR):
            return out


def _go_unquote(lit: str) -> str:
    """strconv.Unquote for "..." and `...` literals (and '.' for char constants)."""
    q = lit[0]
    body = lit[1:-1]
    if q == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    out = []
    i = 0
    n = len(body)
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
              "v": "\v", "\\": "\\", "'": "'", '"': '"'}
    while i < n:
        ch = body[i]
        if ch == q or ch == "\n":
            raise ValueError("invalid syntax")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= n:
            raise ValueError("invalid syntax")
        e = body[i]
        i += 1
        if e in simple:
            if (e == "'" and q == '"') or (e == '"' and q == "'"):
                raise ValueError("invalid syntax")
            out.append(simple[e])
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            hexs = body[i : i + size]
            if len(hexs) != size or not all(c in "0123456789abcdefABCDEF" for c in hexs):
                raise ValueError("invalid syntax")
            i += size
            v = int(hexs, 16)
            if e == "x":
                out.append(chr(v))  # a byte; fine for ASCII
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise ValueError("invalid syntax")
                out.append(chr(v))
        elif e in "01234567":
            octs = body[i - 1 : i + 2]
            if len(octs) != 3 or not all(c in "01234567" for c in octs):
                raise ValueError("invalid syntax")
            i += 2
            v = int(octs, 8)
            if v > 255:
                raise ValueError("invalid syntax")
            out.append(chr(v))
        else:
            raise ValueError("invalid syntax")
    res = "".join(out)
    if q == "'" and len(res) != 1:
        raise ValueError("invalid syntax")
    return res
