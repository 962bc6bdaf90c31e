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


class KillProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.kill_at: int | None = None
        self.pid: int | None = None
        self.sent = 0
        self.killed = False
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._stop = False
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def arm(self, pid: int, kill_at: int | None, sig: int = signal.SIGKILL) -> None:
        """Start relaying for process ``pid``; signal it after ``kill_at`` response bytes (None: never)."""
        with self._lock:
            self.pid, self.kill_at, self.sent, self.killed, self.sig = pid, kill_at, 0, False, sig
        self._armed.set()

    def disarm(self) -> None:
        self._armed.clear()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self._armed.wait(10)
            try:
                up = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self._conns += [client, up]
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

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
        self._stop = True
        self._armed.set()
        self.sock.close()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass
