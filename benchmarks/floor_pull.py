"""The floor of a verifying pull in Python on this machine (issue 8): what any Python tool
must spend to fetch layers *and* check their diff_ids, with nothing else in the way.

No CLI, no HTTP library, no store, no manifest: one raw HTTP/1.1 GET per blob on its own
socket, 1 MiB reads into a reused buffer, each blob hashed and written on its receiving
thread, inflated (ISA-L when installed, else zlib) on a second thread whose output the
receiving thread hashes, up to three blobs at once (imgctl's and docker's default).  Of
the arrangements tried on 2 cores (a third thread for the tar's hash, hashing the blob on
the inflate thread, inflating and hashing the tar on one thread) this one was fastest, and
imgctl uses it too.  The digests are checked at the end; a mismatch exits 1.

    python benchmarks/floor_pull.py HOST:PORT REPO OUTDIR DIGEST:SIZE:DIFF_ID [...]

benchmarks/run.py times it as a fresh process beside imgctl and skopeo.
"""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import sys
import threading

try:
    from isal import isal_zlib as zmod
except ImportError:  # pragma: no cover
    import zlib as zmod

MiB = 1024 * 1024


def fetch(host: str, port: int, repo: str, digest: str, size: int, diff_id: str, outdir: str) -> bool:
    s = socket.create_connection((host, port))
    s.sendall(
        f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        more = s.recv(65536)
        if not more:
            return False
        head += more
    status, rest = head.split(b"\r\n\r\n", 1)
    if b" 200 " not in status.split(b"\r\n", 1)[0]:
        return False  # the registry redirects nowhere for the filesystem driver: 200 or fail

    inq: queue.Queue = queue.Queue(8)
    outq: queue.Queue = queue.Queue(8)
    tar_hash = hashlib.sha256()
    done = []

    def inflate() -> None:
        z = zmod.decompressobj(wbits=31)
        while (chunk := inq.get()) is not None:
            while chunk:
                outq.put(z.decompress(chunk, MiB))
                chunk = z.unconsumed_tail
        outq.put(None)

    def take(wait: float | None) -> bool:
        try:
            out = outq.get(wait is not None, wait)
        except queue.Empty:
            return False
        if out is None:
            done.append(True)
            return False
        tar_hash.update(out)
        return True

    def put(item) -> None:  # never block on input while the inflater waits on output
        while True:
            try:
                inq.put_nowait(item)
                return
            except queue.Full:
                take(0.005)

    thread = threading.Thread(target=inflate)
    thread.start()
    blob_hash = hashlib.sha256()
    got = 0
    with open(os.path.join(outdir, digest.split(":", 1)[1]), "wb", buffering=0) as f:

        def receive(data: bytes) -> None:
            nonlocal got
            blob_hash.update(data)
            f.write(data)
            put(data)
            while take(None):
                pass
            got += len(data)

        if rest:
            receive(rest)
        buf = bytearray(MiB)
        while got < size:
            n = s.recv_into(buf, min(MiB, size - got))
            if not n:
                break
            receive(bytes(buf[:n]))
        put(None)
        while not done:
            take(0.005)
        thread.join()
        os.fsync(f.fileno())
    s.close()
    return (
        got == size
        and f"sha256:{blob_hash.hexdigest()}" == digest
        and f"sha256:{tar_hash.hexdigest()}" == diff_id
    )


def main() -> int:
    hostport, repo, outdir, *blobs = sys.argv[1:]
    host, port = hostport.rsplit(":", 1)
    results: list[bool] = []
    todo = [b.split(":") for b in blobs]  # sha256:HEX:SIZE:sha256:HEX
    pending = [(f"{a}:{b}", int(c), f"{d}:{e}") for a, b, c, d, e in todo]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                digest, size, diff_id = pending.pop(0)
            ok = fetch(host, int(port), repo, digest, size, diff_id, outdir)
            with lock:
                results.append(ok)

    workers = [threading.Thread(target=worker) for _ in range(min(3, len(pending)))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
