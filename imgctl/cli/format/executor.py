"""Go text/template: execution, and :class:`Template` (parse + execute, docker's pre-processing)."""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

from imgctl.errors import UsageError
from imgctl.cli.format.functions import (
    _BASIC_FUNCS,
    _HEADER_FUNCS,
    _is_func,
    _map_key_type,
    _py_func_spec,
    _truth,
    _zero_of,
)
from imgctl.cli.format.lexer import _go_quote, _MISSING
from imgctl.cli.format.parser import (
    _Action,
    _Bool,
    _Chain,
    _Command,
    _Dot,
    _Field,
    _Identifier,
    _If,
    _Marker,
    _Nil,
    _Node,
    _Number,
    _ParseFail,
    _Parser,
    _Pipe,
    _String,
    _TemplateCall,
    _Text,
    _Variable,
)
from imgctl.cli.format.values import _CallError, _go_sprint_value, _go_type, GoMap, _HeaderMap, RowContext
from imgctl.cli.format.width import safe_data, terminal_safe


# ---------------------------------------------------------------------------
# Go text/template: execution


class _ExecFail(Exception):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_MAX_EXEC_DEPTH = 100  # nested {{template}} calls (Go allows 100000; Python's stack would not)


class _State:
    def __init__(self, text: str, funcs, root: Any, defs: dict[str, list[_Node]] | None = None) -> None:
        self.text = text
        self.funcs = funcs
        self.defs = defs or {}
        self.name = ""  # the template being executed, for error messages
        self.depth = 0
        self.missingkey = "default"  # Go's missingkey option, for a GoMap
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.node: _Node | None = None
        self.out: list[str] = []

    # errors
    def at(self, node: _Node) -> None:
        self.node = node

    def errorf(self, msg: str):
        node = self.node
        if node is None:
            raise _ExecFail(f'template: : executing {_go_quote(self.name)} : {msg}')
        pos = node.pos
        before = self.text[:pos]
        nl = before.rfind("\n")
        line = 1 + before.count("\n")
        col = len(before[nl + 1 :].encode("utf-8", "surrogatepass"))
        raise _ExecFail(f'template: :{line}:{col}: executing {_go_quote(self.name)} at <{node}>: {msg}')

    def ideal(self, n: "_Number") -> Any:
        self.at(n)
        try:
            return n.ideal()
        except ValueError as e:
            self.errorf(str(e))

    # variables
    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def push(self, name: str, value: Any) -> None:
        self.vars.append((name, value))

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        self.errorf(f"undefined variable: {name}")

    # walking
    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            self.walk_node(dot, node)

    def walk_node(self, dot: Any, node: _Node) -> None:
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.at(node)
                if _is_func(val):
                    self.errorf(f"can't print {node.pipe} of type func")
                self.out.append("<no value>" if val is None else _go_sprint_value(val))
        elif isinstance(node, _If):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, _TemplateCall):
            self.walk_template(dot, node)
        elif isinstance(node, _Marker):
            if node.kind == "break":
                raise _Break
            if node.kind == "continue":
                raise _Continue
        else:  # pragma: no cover
            raise AssertionError(node)

    def walk_template(self, dot: Any, node: _TemplateCall) -> None:
        self.at(node)
        body = self.defs.get(node.name)
        if body is None:
            self.errorf(f"template {_go_quote(node.name)} not defined")
        if self.depth >= _MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({_MAX_EXEC_DEPTH})")
        new_dot = None if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        saved = (self.vars, self.name)
        self.vars, self.name = [("$", new_dot)], node.name
        self.depth += 1
        try:
            self.walk(new_dot, body)
        finally:
            self.depth -= 1
            self.vars, self.name = saved

    def walk_if_or_with(self, dot: Any, node: _If) -> None:
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                self.walk(val if node.kind == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: _If) -> None:
        self.at(node)
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            mark1 = self.mark()

            def one(index: Any, elem: Any) -> bool:
                if node.pipe.decl:
                    if node.pipe.is_assign:
                        if len(node.pipe.decl) > 1:
                            self.set_var(node.pipe.decl[0].idents[0], index)
                            self.set_var(node.pipe.decl[1].idents[0], elem)
                        else:
                            self.set_var(node.pipe.decl[0].idents[0], elem)
                    elif len(node.pipe.decl) > 1:
                        self.vars[mark1 - 2] = (node.pipe.decl[0].idents[0], index)
                        self.vars[mark1 - 1] = (node.pipe.decl[1].idents[0], elem)
                    else:
                        self.vars[mark1 - 1] = (node.pipe.decl[0].idents[0], elem)
                try:
                    self.walk(elem, node.list)
                except _Continue:
                    pass
                except _Break:
                    return False
                finally:
                    self.pop(mark1)
                return True

            items: list[tuple[Any, Any]]
            if val is None:
                items = []
            elif isinstance(val, (list, tuple)):
                items = list(enumerate(val))
            elif isinstance(val, dict) and not isinstance(val, RowContext):
                items = [(k, val[k]) for k in sorted(val, key=str)]
            elif isinstance(val, int) and not isinstance(val, bool):
                if len(node.pipe.decl) > 1:
                    self.errorf("can't use %s to iterate over more than one variable" % val)
                items = [(i, i) for i in range(val)]
            elif hasattr(val, "__next__"):  # an iterator: a Go channel (index, element)
                items = list(enumerate(val))
            else:
                self.errorf(f"range can't iterate over {_go_sprint_value(val)}")
                items = []
            if not items:
                if node.else_list is not None:
                    self.walk(dot, node.else_list)
                return
            for index, elem in items:
                if not one(index, elem):
                    break
        finally:
            self.pop(mark)

    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        self.at(pipe)
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.idents[0], value)
            else:
                self.push(var.idents[0], value)
        return value

    def not_a_function(self, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, _Chain):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, _Identifier):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd.args, final)
            mark = self.mark()
            try:
                return self.eval_pipeline(dot, first)
            finally:
                self.pop(mark)
        if isinstance(first, _Variable):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, _Bool):
            return first.value
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            self.errorf("nil is not a command")
        if isinstance(first, _Number):
            return self.ideal(first)
        if isinstance(first, _String):
            return first.value
        self.errorf(f"can't evaluate command {first}")

    def eval_field_node(self, dot, field: _Field, args, final):
        self.at(field)
        return self.eval_field_chain(dot, dot, field, field.idents, args, final)

    def eval_chain_node(self, dot, chain: _Chain, args, final):
        self.at(chain)
        if isinstance(chain.node, _Nil):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "any", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable_node(self, dot, var: _Variable, args, final):
        self.at(var)
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            if args is not None:
                self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.idents[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, idents, args, final):
        for name in idents[:-1]:
            receiver = self.eval_field(name, None, _MISSING, receiver, dot)
        return self.eval_field(idents[-1], args, final, receiver, dot)

    def eval_field(self, name: str, args, final, receiver, dot=None):
        if receiver is None:
            if self.missingkey == "error":
                self.errorf(f"nil data; no entry for key {_go_quote(name)}")
            return None  # Go: nil data, missingkey=default -> <no value>
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        if isinstance(receiver, RowContext):
            if name in receiver:
                if has_args:
                    n = (len(args) - 1 if args else 0) + (final is not _MISSING)
                    self.errorf(f"wrong number of args for {name}: want 0 got {n}")
                return receiver[name]
            self.errorf(f"can't evaluate field {name} in type {receiver.type_name}")
        if isinstance(receiver, _HeaderMap):
            return receiver.get(name, name.upper())
        if isinstance(receiver, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if isinstance(receiver, GoMap):
                key_type = _map_key_type(receiver)
                if key_type not in ("string", "interface {}"):
                    self.errorf(f"value has type string; should be {key_type}")
                if self.missingkey == "zero":
                    return _zero_of(receiver.values())
                if self.missingkey == "error":
                    self.errorf(f"map has no entry for key {_go_quote(name)}")
                return None
            self.errorf(f"map has no entry for key {_go_quote(name)}")
        if type(receiver).__module__ != "builtins" and name[:1].isupper():
            # a struct (any Python object): an exported attribute is a field, a bound
            # method is a Go method, called with the arguments
            attr = getattr(receiver, name, _MISSING)
            if inspect.ismethod(attr):
                node = self.node
                return self.eval_call(dot, _py_func_spec(attr), node, name, args, final)
            if attr is not _MISSING:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return attr
        elif name[:1].islower() and type(receiver).__module__ != "builtins" and hasattr(receiver, name):
            self.errorf(f"{name} is an unexported field of struct type {_go_type(receiver)}")
        self.errorf(f"can't evaluate field {name} in type {_go_type(receiver)}")

    def eval_function(self, dot, node: _Identifier, cmd, args, final):
        self.at(node)
        name = node.ident
        spec = self.funcs.get(name)
        if spec is None:
            self.errorf(f'{_go_quote(name)} is not a defined function')
        return self.eval_call(dot, spec, cmd, name, args, final)

    def eval_call(self, dot, spec, node, name, args, final):
        params, variadic, fn = spec
        call_args = list(args[1:]) if args else []
        num_in = len(call_args) + (final is not _MISSING)
        if variadic is not None:
            if num_in < len(params):
                self.errorf(f"wrong number of args for {name}: want at least {len(params)} got {num_in}")
        elif num_in != len(params):
            self.errorf(f"wrong number of args for {name}: want {len(params)} got {num_in}")
        if name == "call" and fn is None:
            return self.eval_builtin_call(dot, node, call_args, final)
        if name in ("and", "or") and fn is None:
            v: Any = None
            for a in call_args:
                v = self.eval_arg(dot, "any", a)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = final
            return v
        return self.invoke(dot, node, spec, call_args, final, name)

    def invoke(self, dot, node, spec, call_args, final, label: str):
        """Evaluate the arguments as the parameters want them (the pipeline's value, if
        any, last) and call; a function's error is ``error calling <label>: ...``."""
        params, variadic, fn = spec

        def kind_at(i: int) -> str:
            return params[i] if i < len(params) else (variadic or "any")

        values = [self.eval_arg(dot, kind_at(i), a) for i, a in enumerate(call_args)]
        if final is not _MISSING:
            values.append(self.validate(final, kind_at(len(values))))
        self.at(node)
        try:
            return fn(*values)
        except _CallError as e:
            self.errorf(f"error calling {label}: {e}")
        except RecursionError:
            self.errorf(f"error calling {label}: too deep")

    def eval_builtin_call(self, dot, node, call_args, final):
        """``call fn args...``: fn is a Go func value (a Python function in the data)."""
        if call_args:
            callee, rest = self.eval_arg(dot, "any", call_args[0]), call_args[1:]
            callee_name = str(call_args[0])
        else:  # {{.F | call}}
            callee, rest, final = final, [], _MISSING
            callee_name = "call"
        self.at(node)
        if callee is None:
            self.errorf("error calling call: call of nil")
        if not _is_func(callee):
            self.errorf(f"error calling call: non-function {callee_name} of type {_go_type(callee)}")
        spec = _py_func_spec(callee)
        params, variadic, _ = spec
        n = len(rest) + (final is not _MISSING)
        if variadic is None and n != len(params):
            self.errorf(f"error calling call: wrong number of args for {callee_name}: got {n} want {len(params)}")
        if variadic is not None and n < len(params):
            self.errorf(
                f"error calling call: wrong number of args for {callee_name}: got {n} want at least {len(params)}"
            )
        return self.invoke(dot, node, spec, rest, final, "call")

    def eval_arg(self, dot, kind: str, n: _Node):
        self.at(n)
        if isinstance(n, _Dot):
            return self.validate(dot, kind)
        if isinstance(n, _Nil):
            if kind == "any":
                return None
            self.errorf(f"cannot assign nil to {_KIND_NAMES[kind]}")
        if isinstance(n, _Field):
            return self.validate(self.eval_field_node(dot, n, [n], _MISSING), kind)
        if isinstance(n, _Variable):
            return self.validate(self.eval_variable_node(dot, n, None, _MISSING), kind)
        if isinstance(n, _Pipe):
            mark = self.mark()
            try:
                return self.validate(self.eval_pipeline(dot, n), kind)
            finally:
                self.pop(mark)
        if isinstance(n, _Identifier):
            return self.validate(self.eval_function(dot, n, n, None, _MISSING), kind)
        if isinstance(n, _Chain):
            return self.validate(self.eval_chain_node(dot, n, None, _MISSING), kind)
        if kind == "str":
            if isinstance(n, _String):
                return n.value
            self.errorf(f"expected string; found {n}")
        if kind == "int":
            if isinstance(n, _Number) and n.is_int:
                return n.int_val
            self.errorf(f"expected integer; found {n}")
        if isinstance(n, _Bool):
            return n.value
        if isinstance(n, _Number):
            return self.ideal(n)
        if isinstance(n, _String):
            return n.value
        self.errorf(f"can't handle {n} for arg of type {_KIND_NAMES[kind]}")

    def validate(self, value: Any, kind: str) -> Any:
        if kind == "any":
            return value
        if value is None:
            self.errorf(f"invalid value; expected {_KIND_NAMES[kind]}")
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        self.errorf(f"wrong type for value; expected {_KIND_NAMES[kind]}; got {_go_type(value)}")


_KIND_NAMES = {"str": "string", "int": "int", "any": "interface {}"}


# ---------------------------------------------------------------------------
# Public template API

_ESCAPES_RE = re.compile(r"\\[tn]")


_FUNC_NAME_RE = re.compile(r"[^\W\d]\w*")


def _nodes_string(nodes: list[_Node]) -> str:
    out = []
    for n in nodes:
        if isinstance(n, _Text):
            out.append(_go_quote(n.text))
        elif isinstance(n, _If):
            out.append("{{%s %s}}%s" % (n.kind, n.pipe, _nodes_string(n.list)))
            if n.else_list is not None:
                out.append("{{else}}" + _nodes_string(n.else_list))
            out.append("{{end}}")
        else:
            out.append(str(n))
    return "".join(out)


def _template_string(fmt: str) -> str:
    """docker/cli ``Format.templateString``."""
    if fmt == "table":
        return ""
    if fmt == "json":
        return "{{json .}}"
    if fmt.startswith("table"):
        fmt = fmt[len("table") :]
    fmt = fmt.strip(" ")
    return _ESCAPES_RE.sub(lambda m: "\t" if m.group(0) == "\\t" else "\n", fmt)


class Template:
    """A Go ``text/template`` as docker's ``--format`` uses it.

    ``Template(fmt)`` applies docker's pre-processing of a ``--format`` value
    (``json`` -> ``{{json .}}``, ``table`` prefix cut, spaces trimmed,
    ``\\t``/``\\n`` escapes).  ``Template(text, raw=True)`` parses ``text``
    untouched (docker ``inspect -f`` does no pre-processing).

    Supported: text, ``{{.A.B}}``, ``$``/``$var`` (``:=``, ``=``), literals,
    pipelines, parentheses, ``if``/``else if``/``with``/``range`` (with
    ``else``, ``break``, ``continue``, range over lists, maps (sorted keys)
    and ints), ``{{- -}}`` trimming, ``{{/* comments */}}``, docker's
    functions (json split join title lower upper pad truncate) and Go's
    builtins (and or not len index slice print printf println eq ne lt le gt
    ge html js urlquery call), ``define``/``template``/``block`` (nested calls up
    to 100 deep).  ``funcs`` adds Python callables as functions (Go's ``Funcs``);
    ``delims`` sets other action delimiters (Go's ``Delims``; "" keeps the default);
    ``missingkey`` is Go's ``missingkey=`` option for a :class:`GoMap` (default,
    zero, error).

    Data model: :class:`RowContext` = docker's context struct (unknown field
    is an error); :class:`GoMap` = Go map (missing key -> ``<no value>``); a
    plain ``dict`` = a Go map under ``missingkey=error`` (what docker's
    ``inspect`` ends up reporting: ``map has no entry for key "X"``); any
    other Python object = a Go struct: its capitalised attributes are fields, its
    bound methods are methods (called with the template's arguments, checked
    against ``str``/``int`` annotations; an exception is the method's error), a
    plain function in a field is a func value for ``call``, an iterator ranges
    like a channel, and ``__str__`` is its String/Error method (a dataclass
    without one prints as Go's ``{a b}``).
    """

    def __init__(
        self,
        text: str,
        *,
        raw: bool = False,
        funcs: dict[str, Callable[..., Any]] | None = None,
        delims: tuple[str, str] = ("", ""),
        missingkey: str = "default",
    ) -> None:
        if missingkey not in ("default", "invalid", "zero", "error"):
            raise UsageError(f"unrecognized option: missingkey={missingkey}")
        self.missingkey = "default" if missingkey == "invalid" else missingkey
        self.text = text
        self.is_table = (not raw) and text.startswith("table")
        self.source = text if raw else _template_string(text)
        self._funcs = _BASIC_FUNCS
        if funcs:  # Go's Template.Funcs: Python callables (see _py_func_spec)
            for name in funcs:
                if not _FUNC_NAME_RE.fullmatch(name):
                    raise UsageError(f"function name {_go_quote(name)} is not a valid identifier")
            self._funcs = dict(_BASIC_FUNCS)
            self._funcs.update({k: _py_func_spec(f) for k, f in funcs.items()})
        try:
            parser = _Parser(self.source, set(self._funcs), (delims[0] or "{{", delims[1] or "}}"))
            self._root = parser.parse()
            self._defs = parser.defs
        except _ParseFail as e:
            raise UsageError(f"template parsing error: {e}") from None
        except RecursionError:
            raise UsageError("template parsing error: template: :1: nesting too deep") from None

    def tree_string(self) -> str:
        """The parse tree written back as Go's ``Tree.Root.String()`` does (text as a Go
        quoted string): ``{{if .X}}"hello"{{else}}{{if .Y}}"x"{{end}}{{end}}``."""
        return _nodes_string(self._root)

    @property
    def defined(self) -> dict[str, str]:
        """The ``{{define}}``d (and ``{{block}}``) templates: name -> tree string."""
        return {k: _nodes_string(v) for k, v in self._defs.items()}

    def _execute(self, obj: Any, funcs) -> tuple[str, Exception | None]:
        st = _State(self.source, funcs, obj, self._defs)
        st.missingkey = self.missingkey
        try:
            st.walk(obj, self._root)
        except _ExecFail as e:
            return "".join(st.out), e
        except RecursionError:
            return "".join(st.out), _ExecFail('template: : executing "": nesting too deep')
        return "".join(st.out), None

    def render(self, obj: Any, *, safe: bool = True) -> str:
        """Execute against ``obj``; errors raise ``UsageError`` with docker's wording.

        ``safe`` (the default): for a terminal.  Every string in ``obj`` is escaped first
        (:func:`safe_data`; ``json`` still encodes the original), and the output then keeps
        no control character but the LF and TAB the template itself wrote.
        """
        out, err = self._execute(safe_data(obj) if safe else obj, self._funcs)
        if err is not None:
            raise UsageError(f"template parsing error: {err}") from None
        return terminal_safe(out, keep_lf_tab=True) if safe else out

    def render_header(self, headers: dict[str, str]) -> str:
        """The table header: the template run against the header map with
        docker's HeaderFunctions.  Like docker, an execution error is ignored
        and whatever was produced before it is kept."""
        out, _ = self._execute(_HeaderMap(headers), _HEADER_FUNCS)
        return out
