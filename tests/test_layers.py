"""Which imgctl modules may import which (as go-containerregistry's depcheck test does).

    cli             imgctl.cli.* (commands, output formats), imgctl.__main__
     |
    use cases       pull push images lifecycle inspect archive export verify search tree
     |              (side by side: no use case imports another)
    shared          localimage (find and read stored images), platforms (multi-platform
     |              data model and its store bookkeeping), tario (bounded tar headers, -o files)
    infrastructure  registry.* (HTTP: the registry API)   store.* (blobs, SQLite index, journal)
     |              (neither imports the other)
    foundation      errors jsonlimit reference config oci trust auth events codecs multipart

A module imports only from its own layer or the layers below it; the library never
imports the CLI.  Every import is checked, also those inside functions (lazy imports
still stack the modules).  A new module must be given its layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import imgctl

PKG = Path(imgctl.__file__).parent

FOUNDATION, INFRASTRUCTURE, SHARED, USE_CASE, CLI = range(5)
LAYER_NAMES = ("foundation", "infrastructure", "shared", "use case", "cli")

# The first name below imgctl decides: imgctl.store.index is in the "store" group.
GROUPS = {
    "": FOUNDATION,  # the package itself (__version__)
    **dict.fromkeys(
        ["errors", "jsonlimit", "reference", "units", "config", "oci", "trust", "auth", "events", "codecs", "multipart"], FOUNDATION
    ),
    "registry": INFRASTRUCTURE,
    "store": INFRASTRUCTURE,
    **dict.fromkeys(["localimage", "platforms", "tario"], SHARED),
    **dict.fromkeys(["pull", "push", "images", "lifecycle", "inspect", "archive", "export", "verify", "search", "tree"], USE_CASE),
    "cli": CLI,
    "__main__": CLI,
}
APART = {frozenset({"registry", "store"})}  # groups of one layer that must not import each other



def _module_name(path: Path) -> str:
    parts = ("imgctl",) + path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PKG / rel).with_suffix(".py").is_file() or (PKG / rel / "__init__.py").is_file()


def _imports(path: Path, name: str) -> list[tuple[int, str]]:
    """(line, imgctl module) of every import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "imgctl"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "imgctl":
                continue
            for a in node.names:  # from imgctl import trust: the module imgctl.trust
                sub = f"{source}.{a.name}"
                out.append((node.lineno, sub if _is_module(sub) else source))
    return list(dict.fromkeys(out))  # one entry per module and line


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def test_every_module_has_a_layer():
    unknown = sorted(m for m in _modules() if _group(m) not in GROUPS)
    assert not unknown, f"give these modules a layer in tests/test_layers.py: {unknown}"


def violations() -> list[str]:
    out = []
    for module, path in _modules().items():
        group = _group(module)
        if group not in GROUPS:
            continue
        layer = GROUPS[group]
        for line, target in _imports(path, module):
            tgroup = _group(target)
            tlayer = GROUPS.get(tgroup)
            if tlayer is None:
                continue
            where = f"{path.relative_to(PKG.parent)}:{line}: {module} ({LAYER_NAMES[layer]}) imports {target} ({LAYER_NAMES[tlayer]})"
            if tlayer > layer:
                out.append(f"{where}: a lower layer imports a higher one")
            elif tgroup != group and layer == USE_CASE and tlayer == USE_CASE:
                out.append(f"{where}: use cases do not import each other (move what they share below them)")
            elif frozenset({group, tgroup}) in APART:
                out.append(f"{where}: {group} and {tgroup} do not import each other")
    return out


def test_imports_follow_the_layers():
    found = violations()
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_the_check_sees_lazy_relative_and_module_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from . import errors\ndef f():\n    from imgctl import pull\n    import imgctl.cli\n    from .store.index import Index\n")
    got = [t for _, t in _imports(src, "imgctl.m")]
    assert got == ["imgctl.errors", "imgctl.pull", "imgctl.cli", "imgctl.store.index"]
