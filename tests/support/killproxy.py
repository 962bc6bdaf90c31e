"""A loopback TCP relay in front of a real registry that SIGKILLs a client process
once a chosen number of response bytes has passed through it.

This is how the crash tests stop `imgctl pull` at exact points of its transfer:
the process is killed while bytes are in flight, not at a guessed moment.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

from .server import LoopbackServer


class KillProxy(LoopbackServer):
    stream = True

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.kill_at: int | None = None
        self.pid: int | None = None
        self.sent = 0
        self.killed = False
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._conns: list[socket.socket] = []
        super().__init__()
        self.start()

    def arm(self, pid: int, kill_at: int | None, sig: int = signal.SIGKILL) -> None:
        """Start relaying for process ``pid``; signal it after ``kill_at`` response bytes (None: never)."""
        with self._lock:
            self.pid, self.kill_at, self.sent, self.killed, self.sig = pid, kill_at, 0, False, sig
        self._armed.set()

    def disarm(self) -> None:
        self._armed.clear()

    def handle(self, client: socket.socket) -> None:
        self._armed.wait(10)
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            return
        self._conns += [client, up]
        back = threading.Thread(target=self._pump, args=(up, client, True), daemon=True)
        back.start()
        self._pump(client, up, False)
        back.join()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                if counted:
                    with self._lock:
                        if self.kill_at is not None and not self.killed and self.sent + len(data) >= self.kill_at:
                            cut = max(0, self.kill_at - self.sent)
                            dst.sendall(data[:cut])
                            self.sent += cut
                            self.killed = True
                            os.kill(self.pid, self.sig)
                            if self.sig == signal.SIGKILL:
                                break
                            # Any other signal (Ctrl-C): the process lives on, and so does the
                            # stream; the rest of this read goes through as it would have.
                            dst.sendall(data[cut:])
                            self.sent += len(data) - cut
                            continue
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._armed.set()
        self.stop()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass
