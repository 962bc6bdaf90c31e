"""Issue 12: the store owns every SQL statement (nothing outside imgctl/store/ talks to SQLite)."""

from __future__ import annotations

import re
from pathlib import Path

import imgctl

PACKAGE = Path(imgctl.__file__).resolve().parent
SQL = re.compile(
    r"^\s*(import sqlite3|from sqlite3\b)|\.(execute|executemany|executescript)\(|\bstore\.db\b|"
    r"\b(SELECT|INSERT|UPDATE|DELETE)\b[^\"'\n]*\b(FROM|INTO|SET)\b",
    re.M,
)


def test_only_the_store_package_speaks_sql():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "store":
            continue
        for m in SQL.finditer(path.read_text()):
            line = path.read_text().count("\n", 0, m.start()) + 1
            offenders.append(f"{rel}:{line}: {m.group(0).strip()}")
    assert offenders == []
