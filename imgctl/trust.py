"""The system trust store, loaded once per process, on another thread when asked for early.

Loading the CA bundle costs about 17 ms, every run that talks to a registry needs it
(even a plain-HTTP loopback registry is first probed over https), and OpenSSL parses
the bundle without holding the GIL.  Commands that will talk to a registry call
``prefetch()`` first thing, so the bundle loads while the rest of imgctl is imported.

The loader is not a daemon thread: a command that fails before it needs the context (a bad
reference, say) exits only once the bundle is loaded.  Ending the interpreter while OpenSSL is
still parsing crashed the process (SIGSEGV, exit 139) with a large ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import os
import ssl
import threading

_lock = threading.Lock()
_loader: threading.Thread | None = None
_shared: ssl.SSLContext | None = None
_failure: BaseException | None = None
_loaded_for: tuple | None = None  # the environment the shared context was (is being) loaded for


def _environment() -> tuple:
    """What decides which CAs OpenSSL loads: a change means the shared context is stale."""
    return os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")


def new_context() -> ssl.SSLContext:
    """A new verifying context with the system trust store (honours SSL_CERT_FILE/SSL_CERT_DIR);
    certifi's bundle only when the system has none.  Callers may add CAs and client certificates.

    Verification is the same on every Python: as docker's (Go's crypto/x509), not RFC 5280's
    strict profile that Python 3.13 turns on.  A private registry's CA without a subject key
    identifier, or a leaf without an authority key identifier, is accepted as docker accepts
    it; and every certificate the user trusts is an anchor, also an intermediate CA (3.13's
    default, and Go's).  Chain, signatures, validity dates and host name are still checked."""
    ctx = ssl.create_default_context()
    ctx.verify_flags = (ctx.verify_flags & ~ssl.VERIFY_X509_STRICT) | ssl.VERIFY_X509_PARTIAL_CHAIN
    paths = ssl.get_default_verify_paths()
    if not ((paths.cafile and os.path.isfile(paths.cafile)) or (paths.capath and os.path.isdir(paths.capath))):
        try:
            import certifi

            ctx.load_verify_locations(certifi.where())
        except ImportError:  # pragma: no cover
            pass
    return ctx


def _load() -> None:
    global _shared, _failure
    try:
        ctx = new_context()
    except BaseException as e:  # noqa: BLE001 - reported to whoever asks for the context
        _failure = e
    else:
        _shared = ctx


def prefetch() -> None:
    """Start loading the shared context in the background (once; a no-op after that)."""
    global _loader, _shared, _loaded_for
    with _lock:
        if _loaded_for != _environment():  # first use, or SSL_CERT_FILE/SSL_CERT_DIR changed
            if _loader is not None:
                _loader.join()
            _shared, _loader, _loaded_for = None, None, _environment()
        if _loader is None and _shared is None:
            _loader = threading.Thread(target=_load, name="trust-store", daemon=False)
            _loader.start()


def system_context() -> ssl.SSLContext:
    """The shared context with just the system trust store.  Never modify it: use ``new_context()``."""
    global _loader, _failure
    prefetch()
    loader = _loader
    if loader is not None:
        loader.join()
    with _lock:
        if _failure is not None:
            failure, _failure, _loader, _loaded_for = _failure, None, None, None  # the next caller tries again
            raise failure
        assert _shared is not None
        return _shared
