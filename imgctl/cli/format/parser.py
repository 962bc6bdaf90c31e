"""Go text/template: the parse tree and the parser."""

from __future__ import annotations

import re

from imgctl.cli.format.lexer import (
    _go_quote,
    _go_unquote,
    _Lexer,
    _SPACE,
    T_ASSIGN,
    T_BLOCK,
    T_BOOL,
    T_BREAK,
    T_CHAR,
    T_CHARCONST,
    T_COMPLEX,
    T_CONTINUE,
    T_DECLARE,
    T_DEFINE,
    T_DOT,
    T_ELSE,
    T_END,
    T_EOF,
    T_ERROR,
    T_FIELD,
    T_IDENT,
    T_IF,
    T_LEFT,
    T_LPAREN,
    T_NIL,
    T_NUMBER,
    T_PIPE,
    T_RANGE,
    T_RAWSTRING,
    T_RIGHT,
    T_RPAREN,
    T_SPACE,
    T_STRING,
    T_TEMPLATE,
    T_TEXT,
    T_VARIABLE,
    T_WITH,
    _Tok,
)


# ---------------------------------------------------------------------------
# Go text/template: parse tree


class _Node:
    __slots__ = ("pos",)
    kind = ""

    def __str__(self) -> str:  # pragma: no cover - overridden
        return self.kind


class _Text(_Node):
    __slots__ = ("text",)
    kind = "text"

    def __init__(self, pos, text):
        self.pos, self.text = pos, text


class _Field(_Node):
    __slots__ = ("idents",)
    kind = "field"

    def __init__(self, pos, ident: str):
        self.pos = pos
        self.idents = ident[1:].split(".")

    def __str__(self):
        return "".join("." + i for i in self.idents)


class _Variable(_Node):
    __slots__ = ("idents",)
    kind = "variable"

    def __init__(self, pos, ident: str):
        self.pos = pos
        self.idents = ident.split(".")

    def __str__(self):
        return ".".join(self.idents)


class _Dot(_Node):
    __slots__ = ()
    kind = "dot"

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."


class _Nil(_Node):
    __slots__ = ()
    kind = "nil"

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "nil"


class _Bool(_Node):
    __slots__ = ("value",)
    kind = "bool"

    def __init__(self, pos, value):
        self.pos, self.value = pos, value

    def __str__(self):
        return "true" if self.value else "false"


class _String(_Node):
    __slots__ = ("quoted", "value")
    kind = "string"

    def __init__(self, pos, quoted, value):
        self.pos, self.quoted, self.value = pos, quoted, value

    def __str__(self):
        return self.quoted


def _underscore_ok(s: str) -> bool:
    """strconv's underscoreOK: ``_`` only between digits, or between a base prefix and a digit."""
    saw = "^"
    if s[:1] in ("+", "-"):
        s = s[1:]
    i, hexa = 0, False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i, saw, hexa = 2, "0", s[1] in "xX"
    for c in s[i:]:
        if c.isdigit() and c.isascii() or hexa and c in "abcdefABCDEF":
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _go_parse_uint(s: str) -> int | None:
    """strconv.ParseUint(s, 0, 64): base prefixes 0b 0o 0x and a bare leading 0 (octal)."""
    if not s:
        return None
    body, base = s, 10
    if s[0] == "0":
        if len(s) >= 3 and s[1] in "bB":
            body, base = s[2:], 2
        elif len(s) >= 3 and s[1] in "oO":
            body, base = s[2:], 8
        elif len(s) >= 3 and s[1] in "xX":
            body, base = s[2:], 16
        else:
            body, base = s[1:], 8
    n = 0
    underscores = False
    for c in body:
        if c == "_":
            underscores = True
            continue
        d = int(c, 16) if c in "0123456789abcdefABCDEF" else 99
        if d >= base:
            return None
        n = n * base + d
    if underscores and not _underscore_ok(s):
        return None
    return n if n < 1 << 64 else None


def _go_parse_int(s: str) -> int | None:
    """strconv.ParseInt(s, 0, 64)."""
    neg = s[:1] == "-"
    u = _go_parse_uint(s[1:] if s[:1] in "+-" else s)
    if u is None:
        return None
    if neg:
        return -u if u <= 1 << 63 else None
    return u if u < 1 << 63 else None


_GO_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+")


def _go_parse_float(s: str) -> float | None:
    """strconv.ParseFloat(s, 64) for the literal forms the lexer produces (decimal, or hex
    with its mandatory ``p`` exponent; ``_`` as strconv allows it); None when Go refuses."""
    if "_" in s and not _underscore_ok(s):
        return None
    t = s.replace("_", "")
    try:
        if _GO_HEX_FLOAT.fullmatch(s):
            return float.fromhex(t)
        if _GO_DEC_FLOAT.fullmatch(s) and any(c.isdigit() for c in t):
            return float(t)
    except (ValueError, OverflowError):
        return None
    return None


def _int64_of(f: float) -> int | None:
    return int(f) if f == f and -(2**63) <= f < 2**63 and int(f) == f else None


class _Number(_Node):
    """A number or character constant as Go's parse.NumberNode: which of int, uint, float
    and complex it can be (several at once), decided as ``newNumber`` decides."""

    __slots__ = ("text", "is_int", "is_uint", "is_float", "is_complex", "int_val", "float_val", "complex_val", "is_char")
    kind = "number"

    def __init__(self, pos, text: str, is_char: bool, is_complex_item: bool = False):
        self.pos, self.text, self.is_char = pos, text, is_char
        self.is_int = self.is_uint = self.is_float = self.is_complex = False
        self.int_val, self.float_val, self.complex_val = 0, 0.0, 0j
        if is_char:
            try:
                ch = _go_unquote(text)
            except ValueError:
                raise _ParseFail(f"malformed character constant: {text}")
            self.is_int = self.is_uint = self.is_float = True
            self.int_val = ord(ch)
            self.float_val = float(self.int_val)
            return
        if is_complex_item:  # "1+2i": fmt.Sscan parses the pair
            m = re.fullmatch(r"([+-]?[^+-]+(?:[eEpP][+-][^+-]+)?)([+-][^+-]+(?:[eEpP][+-][^+-]+)?)i", text)
            re_, im = (_go_parse_float(m.group(1)), _go_parse_float(m.group(2))) if m else (None, None)
            if re_ is None or im is None:
                raise _ParseFail(f"illegal number syntax: {_go_quote(text)}")
            self._set_complex(complex(re_, im))
            return
        if text.endswith("i"):  # imaginary: complex unless zero ("073i" is 73i: not octal)
            f = _go_parse_float(text[:-1])
            if f is not None:
                self._set_complex(complex(0, f))
                return
        u = _go_parse_uint(text)
        if u is not None:
            self.is_uint = True
        i = _go_parse_int(text)
        if i is not None:
            self.is_int, self.int_val = True, i
            if i == 0:
                self.is_uint = True  # -0 is a uint too
        if self.is_int:
            self.is_float, self.float_val = True, float(self.int_val)
        elif self.is_uint:
            self.is_float, self.float_val = True, float(u)
        else:
            f = _go_parse_float(text)
            if f is not None:
                if not any(c in text for c in ".eEpP"):
                    raise _ParseFail(f"integer overflow: {_go_quote(text)}")
                self.is_float, self.float_val = True, f
                n = _int64_of(f)
                if n is not None:
                    self.is_int, self.int_val = True, n
                if f == f and 0 <= f < 2**64 and int(f) == f:
                    self.is_uint = True
        if not (self.is_int or self.is_uint or self.is_float):
            raise _ParseFail(f"illegal number syntax: {_go_quote(text)}")

    def _set_complex(self, c: complex) -> None:
        self.is_complex, self.complex_val = True, c
        if c.imag == 0:  # simplifyComplex
            self.is_float, self.float_val = True, c.real
            n = _int64_of(c.real)
            if n is not None:
                self.is_int, self.int_val = True, n
            self.is_uint = c.real == c.real and 0 <= c.real < 2**64 and int(c.real) == c.real

    def ideal(self):
        """exec.go idealConstant: complex, else float when the text looks like one (not a
        hex integer, not a character), else int; a uint beyond int64 does not fit."""
        if self.is_complex:
            return self.complex_val
        t = self.text
        hex_int = len(t) > 2 and t[0] == "0" and t[1] in "xX" and not any(c in t for c in "pP")
        if self.is_float and not hex_int and not self.is_char and any(c in t for c in ".eEpP"):
            return self.float_val
        if self.is_int:
            return self.int_val
        if self.is_uint:
            raise ValueError(f"{t} overflows int")
        return self.float_val

    def __str__(self):
        return self.text


class _Identifier(_Node):
    __slots__ = ("ident",)
    kind = "identifier"

    def __init__(self, pos, ident):
        self.pos, self.ident = pos, ident

    def __str__(self):
        return self.ident


class _Chain(_Node):
    __slots__ = ("node", "fields")
    kind = "chain"

    def __init__(self, pos, node):
        self.pos, self.node, self.fields = pos, node, []

    def __str__(self):
        s = str(self.node)
        if isinstance(self.node, _Pipe):
            s = "(" + s + ")"
        return s + "".join("." + f for f in self.fields)


class _Command(_Node):
    __slots__ = ("args",)
    kind = "command"

    def __init__(self, pos):
        self.pos, self.args = pos, []

    def __str__(self):
        parts = []
        for a in self.args:
            parts.append("(" + str(a) + ")" if isinstance(a, _Pipe) else str(a))
        return " ".join(parts)


class _Pipe(_Node):
    __slots__ = ("line", "decl", "is_assign", "cmds")
    kind = "pipe"

    def __init__(self, pos, line):
        self.pos, self.line = pos, line
        self.decl: list[_Variable] = []
        self.is_assign = False
        self.cmds: list[_Command] = []

    def __str__(self):
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class _Action(_Node):
    __slots__ = ("pipe",)
    kind = "action"

    def __init__(self, pos, pipe):
        self.pos, self.pipe = pos, pipe

    def __str__(self):
        return "{{" + str(self.pipe) + "}}"


class _Branch(_Node):
    __slots__ = ("pipe", "list", "else_list")

    def __init__(self, kind, pos, pipe, lst, else_list):
        self.kind = kind  # type: ignore[misc]
        self.pos, self.pipe, self.list, self.else_list = pos, pipe, lst, else_list


class _If(_Branch):
    __slots__ = ("kind",)


class _Marker(_Node):
    """{{end}}, {{else}}, {{break}}, {{continue}}."""

    __slots__ = ("kind",)

    def __init__(self, kind, pos):
        self.kind, self.pos = kind, pos  # type: ignore[misc]

    def __str__(self):
        return "{{" + self.kind + "}}"


class _TemplateCall(_Node):
    """{{template "name" pipeline}} (also what {{block}} leaves in its place)."""

    __slots__ = ("name", "pipe", "line")
    kind = "template"

    def __init__(self, pos, line, name, pipe):
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self):
        if self.pipe is None:
            return "{{template %s}}" % _go_quote(self.name)
        return "{{template %s %s}}" % (_go_quote(self.name), self.pipe)


def _is_empty_tree(nodes: list[_Node]) -> bool:
    """parse.IsEmptyTree: nothing but white space (comments are already dropped)."""
    return all(isinstance(n, _Text) and not n.text.strip(_SPACE) for n in nodes)


class _ParseFail(Exception):
    pass


_ARG_START = {
    T_BOOL, T_CHARCONST, T_COMPLEX, T_DOT, T_FIELD, T_IDENT, T_NUMBER, T_NIL,
    T_RAWSTRING, T_STRING, T_VARIABLE, T_LPAREN,
}


class _Parser:
    def __init__(self, text: str, funcs: set[str], delims: tuple[str, str] = ("{{", "}}")) -> None:
        self.lex = _Lexer(text, *delims)
        self.back: list[_Tok] = []
        self.funcs = funcs
        self.defs: dict[str, list[_Node]] = {}  # {{define}}d and {{block}} templates
        self.vars = ["$"]
        self.range_depth = 0
        self.line = 1
        self.action_line = 0  # line of the {{ of the action being parsed (Go's actionLine)

    # token plumbing (Go's three-token lookahead as a push-back stack)
    def next(self) -> _Tok:
        if self.back:
            return self.back.pop()
        tok = self.lex.next_item()
        self.line = tok.line
        return tok

    def backup(self, tok: _Tok) -> None:
        self.back.append(tok)

    def peek(self) -> _Tok:
        tok = self.next()
        self.backup(tok)
        return tok

    def next_non_space(self) -> _Tok:
        tok = self.next()
        while tok.typ == T_SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> _Tok:
        tok = self.next_non_space()
        self.backup(tok)
        return tok

    def errorf(self, msg: str):
        raise _ParseFail(f"template: :{self.line}: {msg}")

    def expect(self, typ: int, context: str) -> _Tok:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: _Tok, context: str):
        if tok.typ == T_ERROR:
            # Go names the line where an action started when the lexer failed on another
            # one: "unclosed action started at :2", "unterminated quoted string in action
            # started at :1".
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at :{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf(tok.val + extra)
        self.errorf(f"unexpected {tok} in {context}")

    # grammar
    def parse(self) -> list[_Node]:
        root: list[_Node] = []
        while self.peek().typ != T_EOF:
            if self.peek().typ == T_LEFT:
                delim = self.next()
                tok = self.next_non_space()
                if tok.typ == T_DEFINE:
                    self.parse_definition()
                    continue
                self.backup(tok)
                self.backup(delim)
            n = self.text_or_action()
            if isinstance(n, _Marker) and n.kind in ("end", "else"):
                self.errorf(f"unexpected {n}")
            root.append(n)
        return root

    def add_definition(self, name: str, nodes: list[_Node]) -> None:
        """parse's Tree.add: a template may be defined twice only if one of the two
        definitions is empty (then the non-empty one wins)."""
        old = self.defs.get(name)
        if old is None or _is_empty_tree(old):
            self.defs[name] = nodes
        elif not _is_empty_tree(nodes):
            self.errorf(f"template: multiple definition of template {_go_quote(name)}")

    def parse_definition(self) -> None:
        """{{define "name"}} ... {{end}} (the {{define has been read); top level only."""
        name = self.template_name("define clause")
        self.expect(T_RIGHT, "define clause")
        self.definition_body(name, "define clause")

    def definition_body(self, name: str, context: str) -> None:
        """The body of a {{define}} or {{block}} up to its {{end}}: a template of its own
        (only ``$`` is defined in it)."""
        saved, self.vars = self.vars, ["$"]
        try:
            body, end = self.item_list()
        finally:
            self.vars = saved
        if not (isinstance(end, _Marker) and end.kind == "end"):
            self.errorf(f"unexpected {end} in {context}")
        self.add_definition(name, body)

    def template_name(self, context: str) -> str:
        tok = self.next_non_space()
        if tok.typ not in (T_STRING, T_RAWSTRING):
            self.unexpected(tok, context)
        try:
            return _go_unquote(tok.val)
        except ValueError:
            self.errorf("invalid syntax")
            raise AssertionError

    def template_control(self, tok: _Tok) -> _Node:
        """{{template "name" [pipeline]}} and {{block "name" pipeline}} ... {{end}}."""
        context = "block clause" if tok.typ == T_BLOCK else "template clause"
        name = self.template_name(context)
        pipe = None
        if self.peek_non_space().typ != T_RIGHT:
            pipe = self.pipeline(context)
        else:
            self.next_non_space()
        if tok.typ == T_BLOCK:
            if pipe is None:
                self.errorf("missing value for block clause")
            self.definition_body(name, context)
        return _TemplateCall(tok.pos, tok.line, name, pipe)

    def item_list(self) -> tuple[list[_Node], _Node]:
        lst: list[_Node] = []
        while self.peek_non_space().typ != T_EOF:
            n = self.text_or_action()
            if isinstance(n, _Marker) and n.kind in ("end", "else"):
                return lst, n
            lst.append(n)
        self.errorf("unexpected EOF")
        raise AssertionError  # unreachable

    def text_or_action(self) -> _Node:
        tok = self.next_non_space()
        if tok.typ == T_TEXT:
            return _Text(tok.pos, tok.val)
        if tok.typ == T_LEFT:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")
        raise AssertionError

    def action(self) -> _Node:
        tok = self.next_non_space()
        t = tok.typ
        if t in (T_BLOCK, T_TEMPLATE):
            return self.template_control(tok)
        if t == T_ELSE:
            return self.else_control()
        if t == T_END:
            return _Marker("end", self.expect(T_RIGHT, "end").pos)
        if t == T_IF:
            return _If("if", *self.parse_control(True, "if"))
        if t == T_RANGE:
            return _If("range", *self.parse_control(False, "range"))
        if t == T_WITH:
            return _If("with", *self.parse_control(True, "with"))
        if t in (T_BREAK, T_CONTINUE):
            word = tok.val
            nt = self.next_non_space()
            if nt.typ != T_RIGHT:
                self.unexpected(nt, "{{%s}}" % word)
            if self.range_depth == 0:
                self.errorf("{{%s}} outside {{range}}" % word)
            return _Marker(word, tok.pos)
        self.backup(tok)
        tok = self.peek()
        return _Action(tok.pos, self.pipeline("command"))

    def else_control(self) -> _Node:
        peek = self.peek_non_space()
        if peek.typ in (T_IF, T_WITH):
            return _Marker("else", peek.pos)
        tok = self.expect(T_RIGHT, "else")
        return _Marker("else", tok.pos)

    def parse_control(self, allow_else_if: bool, context: str):
        nvars = len(self.vars)
        try:
            pipe = self.pipeline(context)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _Marker) and nxt.kind == "else":
                want = T_IF if context == "if" else T_WITH
                if allow_else_if and self.peek().typ == want:
                    self.next()
                    else_list = [_If(context, *self.parse_control(True, context))]
                else:
                    else_list, nxt = self.item_list()
                    if not (isinstance(nxt, _Marker) and nxt.kind == "end"):
                        self.errorf(f"expected end; found {nxt}")
            return pipe.pos, pipe, lst, else_list
        finally:
            del self.vars[nvars:]

    def pipeline(self, context: str) -> _Pipe:
        tok = self.peek_non_space()
        pipe = _Pipe(tok.pos, tok.line)
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != T_VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (T_ASSIGN, T_DECLARE):
                pipe.is_assign = nxt.typ == T_ASSIGN
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, v.val))
                self.vars.append(v.val)
                break
            if nxt.typ == T_CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, v.val))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T_VARIABLE, T_RIGHT, T_RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            if after.typ == T_SPACE:
                self.backup(after)
                self.backup(v)
            else:
                self.backup(v)
            break
        while True:
            tok = self.next_non_space()
            if tok.typ in (T_RIGHT, T_RPAREN):
                self.check_pipeline(pipe, context)
                if tok.typ == T_RPAREN:
                    self.backup(tok)
                return pipe
            if tok.typ in _ARG_START:
                self.backup(tok)
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (_Bool, _Dot, _Nil, _Number, _String)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == T_SPACE:
                continue
            if tok.typ in (T_RIGHT, T_RPAREN):
                self.backup(tok)
            elif tok.typ == T_PIPE:
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == T_FIELD:
            chain = _Chain(self.peek().pos, node)
            while self.peek().typ == T_FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, _Field):
                return _Field(chain.pos, str(chain))
            if isinstance(node, _Variable):
                return _Variable(chain.pos, str(chain))
            if isinstance(node, (_Bool, _String, _Number, _Nil, _Dot)):
                self.errorf(f"unexpected . after term {_go_quote(str(node))}")
            return chain
        return node

    def term(self) -> _Node | None:
        tok = self.next_non_space()
        t = tok.typ
        if t == T_ERROR:
            self.unexpected(tok, "operand")
        if t == T_IDENT:
            if tok.val not in self.funcs:
                self.errorf(f"function {_go_quote(tok.val)} not defined")
            return _Identifier(tok.pos, tok.val)
        if t == T_DOT:
            return _Dot(tok.pos)
        if t == T_NIL:
            return _Nil(tok.pos)
        if t == T_VARIABLE:
            name = tok.val.split(".")[0]
            if name not in self.vars:
                self.errorf(f"undefined variable {_go_quote(name)}")
            return _Variable(tok.pos, tok.val)
        if t == T_FIELD:
            return _Field(tok.pos, tok.val)
        if t == T_BOOL:
            return _Bool(tok.pos, tok.val == "true")
        if t in (T_CHARCONST, T_COMPLEX, T_NUMBER):
            try:
                return _Number(tok.pos, tok.val, t == T_CHARCONST, t == T_COMPLEX)
            except _ParseFail as e:
                self.errorf(str(e))
        if t == T_LPAREN:
            pipe = self.pipeline("parenthesized pipeline")
            nt = self.next()
            if nt.typ != T_RPAREN:
                self.errorf(f"unclosed right paren: unexpected {nt}")
            return pipe
        if t in (T_STRING, T_RAWSTRING):
            try:
                value = _go_unquote(tok.val)
            except ValueError:
                self.errorf("invalid syntax")
            return _String(tok.pos, tok.val, value)
        self.backup(tok)
        return None
