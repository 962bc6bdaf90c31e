"""``imgctl pull``: run a pull and show its progress the way docker does."""

from __future__ import annotations

import sys
import threading

from imgctl.cli import image_argument, state
from imgctl.errors import UsageError
from imgctl.pull import Event


# docker's per-layer state words, by event kind (byte progress is shown on a terminal only)
STATE_TEXT = {
    "pulling": "Pulling fs layer",
    "waiting": "Waiting",
    "verifying": "Verifying Checksum",
    "downloaded": "Download complete",
    "complete": "Pull complete",
    "exists": "Already exists",
}


class PlainProgress:
    """Off a terminal: docker's state lines, no byte counts."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        if e.kind == "pulling_from":
            line = e.text
        elif e.kind in ("retrying", "resuming"):
            line = f"{e.id}: {e.text}" if e.id else e.text
        elif e.kind in STATE_TEXT:
            line = f"{e.id}: {STATE_TEXT[e.kind]}"
        else:
            return
        with self._lock:
            print(line, file=self.out, flush=True)

    def line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def stop(self) -> None:
        pass


class TerminalProgress:
    """On a terminal: one live row per layer with a bar, plus an overall bar."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.console = Console(highlight=False)
        self.progress = Progress(
            TextColumn("{task.fields[label]}"),
            BarColumn(bar_width=40),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, int] = {}
        self._total = None
        self._lock = threading.Lock()
        self.progress.start()

    def _task(self, layer: str):
        if layer not in self._tasks:
            self._tasks[layer] = self.progress.add_task("", label=f"{layer}: {STATE_TEXT['pulling']}", total=None)
        return self._tasks[layer]

    def __call__(self, e: Event) -> None:
        with self._lock:
            if e.kind == "pulling_from":
                self.progress.console.print(e.text)
                return
            if not e.id:
                if e.text:
                    self.progress.console.print(e.text)
                return
            t = self._task(e.id)
            if e.kind in ("retrying", "resuming"):
                self.progress.update(t, label=f"{e.id}: {e.text}")
                return
            label = "Downloading" if e.kind == "downloading" else STATE_TEXT.get(e.kind)
            if label is None:
                return
            fields = {"label": f"{e.id}: {label}"}
            if e.kind == "downloading":
                self.progress.update(t, completed=e.current, total=e.total or None, **fields)
                self._update_total()
            elif e.kind in ("exists", "complete", "downloaded"):
                task = self.progress.tasks[[x.id for x in self.progress.tasks].index(t)]
                self.progress.update(t, completed=task.total or 0, **fields)
                self._update_total()
            elif e.kind == "pulling" and e.total:
                self.progress.update(t, total=e.total, **fields)
            else:
                self.progress.update(t, **fields)

    def _update_total(self) -> None:
        layer_tasks = [x for x in self.progress.tasks if x.id in self._tasks.values()]
        total = sum(x.total or 0 for x in layer_tasks)
        done = sum(x.completed for x in layer_tasks)
        if self._total is None:
            self._total = self.progress.add_task("", label="Total", total=total or None)
        self.progress.update(self._total, completed=done, total=total or None)

    def line(self, text: str) -> None:
        self.progress.console.print(text)

    def stop(self) -> None:
        self.progress.stop()


def run_pull(
    name: str, *, platform: str | None, all_tags: bool, quiet: bool, mirrors: list[str] = (), authfile=None,
    all_platforms: bool = False, attestations: bool = False,
) -> None:
    from imgctl.cli.authfile import credentials
    from imgctl.config import parse_mirror_url
    from imgctl.oci import parse_platform
    from imgctl.pull import pull, pull_all_tags
    from imgctl.registry import RegistryClient, Retry, seconds_text

    ref, default_tag = image_argument(name, all_tags=all_tags)
    plat = parse_platform(platform) if platform else None
    if attestations and not all_platforms:
        raise UsageError("--attestations needs --all-platforms")
    if all_platforms:
        plat = None  # every platform (DOCKER_DEFAULT_PLATFORM does not narrow it)
    try:
        extra_mirrors = tuple(parse_mirror_url(m) for m in mirrors)
    except ValueError as e:
        raise UsageError(f"--registry-mirror: {e}") from None
    config = state.config()
    store = state.store()

    if quiet:
        show = None
    elif sys.stdout.isatty():
        show = TerminalProgress()
    else:
        show = PlainProgress()
    if show and default_tag:
        show.line("Using default tag: latest")
    def on_retry(retry: Retry) -> None:
        if show is not None:
            layer = retry.digest.split(":", 1)[1][:12] if retry.digest else ""
            show(Event("retrying", layer, text=f"Retrying in {seconds_text(retry.delay)}"))

    try:
        with RegistryClient(
            config, credentials=credentials(authfile), log=state.log, mirrors=extra_mirrors, on_retry=on_retry
        ) as client:
            kw = dict(store=store, client=client, config=config, platform=plat, progress=show, all_platforms=all_platforms,
                      attestations=attestations)
            if all_tags:
                results = pull_all_tags(ref, **kw)
            else:
                results = [pull(ref, **kw)]
    finally:
        if show:
            show.stop()
    changed = any(r.changed for r in results)
    if all_tags:
        shown, full = ref.familiar_repository, ref.repository
    else:
        shown, full = ref.familiar(), str(ref)
    if show:
        last = results[-1] if results else None
        if last is not None:
            show.line(f"Digest: {last.digest}")
        status = "Downloaded newer image" if changed else "Image is up to date"
        show.line(f"Status: {status} for {shown}")
    print(full, flush=True)
