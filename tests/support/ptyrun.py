"""Run imgctl on a pseudo-terminal of a given size, and a minimal terminal to replay its output."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path


def run_on_pty(args: list[str], *, cols: int, rows: int, timeout: float = 60.0) -> tuple[int, str, str]:
    """``python -m imgctl ARGS`` with stdout on a pty of ``cols`` x ``rows``: (code, raw stdout, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgctl", *args], stdin=subprocess.DEVNULL, stdout=slave,
        stderr=subprocess.PIPE, env=env, cwd=repo,
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"imgctl {args} did not finish in {timeout} s")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        err = proc.stderr.read().decode(errors="replace")
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        os.close(master)
    return code, out.decode(errors="replace"), err


_CSI = re.compile(r"\x1b\[(\d*)([A-Za-z])")


@dataclass
class Screen:
    """Replays cursor-up/down, erase-line, CR and LF on an unbounded screen ``width`` wide."""

    width: int
    lines: list[list[str]] = field(default_factory=lambda: [[]])
    row: int = 0
    col: int = 0
    wrapped: list[str] = field(default_factory=list)  # lines the terminal had to fold
    draws: list[str] = field(default_factory=list)  # text written after each erase-line

    def feed(self, raw: str) -> "Screen":
        i = 0
        drawing: list[str] | None = None
        while i < len(raw):
            c = raw[i]
            if c == "\x1b":
                m = _CSI.match(raw, i)
                assert m, f"unexpected escape sequence at {raw[i:i + 10]!r}"
                n = int(m.group(1) or 1)
                cmd = m.group(2)
                if drawing is not None:
                    self.draws.append("".join(drawing))
                    drawing = None
                if cmd == "A":
                    self.row = max(0, self.row - n)
                elif cmd == "B":
                    self.row = min(len(self.lines) - 1, self.row + n)
                elif cmd == "K":
                    self.lines[self.row] = []
                    drawing = []
                else:
                    raise AssertionError(f"unexpected escape sequence {m.group(0)!r}")
                i = m.end()
                continue
            if c == "\r":
                self.col = 0
            elif c == "\n":
                if drawing is not None:
                    self.draws.append("".join(drawing))
                    drawing = None
                self._down()
            else:
                if self.col >= self.width:  # the terminal folds the line
                    self.wrapped.append("".join(self.lines[self.row]))
                    self._down()
                    self.col = 0
                line = self.lines[self.row]
                line.extend(" " * (self.col - len(line)))
                if self.col < len(line):
                    line[self.col] = c
                else:
                    line.append(c)
                self.col += 1
                if drawing is not None:
                    drawing.append(c)
            i += 1
        return self

    def _down(self) -> None:
        self.row += 1
        if self.row == len(self.lines):
            self.lines.append([])

    def text(self) -> list[str]:
        out = ["".join(l).rstrip() for l in self.lines]
        while out and not out[-1]:
            out.pop()
        return out
