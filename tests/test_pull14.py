"""Issue 14, everyday pull output: docker's lines byte for byte, on a terminal and off it;
``rmi``'s repo-digest lines; every command refuses a broken config.toml."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_layer, make_random_layer, push_image
from tests.support.ptyrun import Screen, run_on_pty
from tests.support.storecheck import assert_store_verifies, blob_files


_short_names = itertools.count(1)


@pytest.fixture
def unique_repo():
    """Short names here: the terminal tests count on a name that fits on one line."""
    return f"t14/app{next(_short_names)}"


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def one_layer_image(seed: str):
    return make_image([make_layer({"etc/seed": seed * 100}, "gzip")], labels={"seed": seed})


@pytest.fixture
def four_layers(registry, unique_repo):
    """Four layers of about 1 MB each (big enough for several byte-progress rows)."""
    img = make_image([make_random_layer(10, 100_000, seed=i) for i in range(4)])
    push_image(registry.url, unique_repo, img, tag="v1")
    return registry.ref(unique_repo, "v1"), img


# -- up to date -----------------------------------------------------------------------------
def test_up_to_date_pull_prints_no_layer_lines_on_a_terminal_or_off_it(four_layers, unique_repo):
    name, img = four_layers
    assert run("pull", "-q", name).code == 0
    expected = [
        f"v1: Pulling from {unique_repo}",
        f"Digest: {img.manifest_digest}",
        f"Status: Image is up to date for {name}",
        name,
    ]
    r = run("pull", name)
    assert (r.code, r.lines, r.err) == (0, expected, "")
    code, raw, err = run_on_pty(["pull", name], cols=60, rows=24)
    assert (code, err) == (0, "")
    assert raw == "".join(f"{line}\r\n" for line in expected)  # byte for byte: no escape, no row


# -- terminal rendering ---------------------------------------------------------------------
@pytest.mark.parametrize("cols", [60, 40])
def test_terminal_rows_fit_the_width_and_text_lines_stay_whole(four_layers, unique_repo, cols):
    name, img = four_layers
    code, raw, err = run_on_pty(["pull", name], cols=cols, rows=24)
    assert (code, err) == (0, "")
    # The lines people copy are written whole: no newline or escape inside them.
    for line in (f"v1: Pulling from {unique_repo}", f"Digest: {img.manifest_digest}",
                 f"Status: Downloaded newer image for {name}", name):
        assert f"\n{line}\r\n" in "\n" + raw or raw.startswith(f"{line}\r\n"), line
    screen = Screen(cols).feed(raw)
    # Only those text lines may be folded by the terminal; no progress row ever reaches the edge.
    assert all(w.startswith(("Digest: ", "Status: ")) for w in screen.wrapped), screen.wrapped
    assert screen.draws and all(len(d) <= cols - 1 for d in screen.draws)
    ids = [short(l.digest) for l in img.layers]
    final = screen.text()
    assert final[0] == f"v1: Pulling from {unique_repo}"
    assert final[1:5] == [f"{i}: Pull complete" for i in ids]
    assert final[5].startswith("Total       : 4/4")
    # Columns stay put: every Downloading row has its counts (or bar) at the same place,
    # and both sizes are go-units HumanSize, as docker prints them.
    downloading = [d for d in screen.draws if ": Downloading" in d]
    assert downloading
    assert len({d.index("Downloading") for d in downloading}) == 1
    after = {len(d[: d.index("Downloading") + len("Downloading ")]) for d in downloading}
    assert len(after) == 1
    size = r"\d+(\.\d+)?(B|kB|MB|GB)"
    for d in downloading:
        m = re.search(rf"(\S+)/(\S+)$", d)
        if cols >= 60:
            assert re.fullmatch(size, m.group(1)) and re.fullmatch(size, m.group(2)), d
        else:  # too narrow for both counts: a percentage
            assert re.search(r"\s\d{1,3}%$", d), d
    if cols >= 60:
        assert any("[" in d and "]" in d for d in downloading)  # a bar, cut to what fits


def test_terminal_with_more_layers_than_lines_ends_with_every_row_final(registry, unique_repo):
    """30 layers on a 10-line terminal: rows wait their turn, none is left in a stale state."""
    img = make_image([make_layer({f"f{i}": f"layer {i}"}, "gzip") for i in range(30)])
    push_image(registry.url, unique_repo, img, tag="v1")
    name = registry.ref(unique_repo, "v1")
    code, raw, err = run_on_pty(["pull", name], cols=80, rows=10)
    assert (code, err) == (0, "")
    final = Screen(80).feed(raw).text()
    assert final[1:31] == [f"{short(l.digest)}: Pull complete" for l in img.layers]
    # cursor moves never reach further up than the screen allows
    assert max((int(n) for n in re.findall(r"\x1b\[(\d+)A", raw)), default=0) <= 9


# -- Downloaded newer image: decided by what this pull fetched ---------------------------------
def test_pull_after_verify_repair_says_downloaded_newer(four_layers, store_root):
    name, img = four_layers
    assert run("pull", "-q", name).code == 0
    victim = img.layers[2]
    path = blob_files(store_root)[victim.digest]
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    assert run("verify", "--repair").code == 1
    r = run("pull", name)
    assert r.code == 0, r.err
    ids = [short(l.digest) for l in img.layers]
    assert [l for l in r.lines if "Already exists" in l] == [f"{i}: Already exists" for i in ids if i != ids[2]]
    assert f"{ids[2]}: Pull complete" in r.lines
    assert r.lines[-2:] == [f"Status: Downloaded newer image for {name}", name]
    assert run("verify").code == 0
    assert_store_verifies(store_root)


def test_another_process_pulling_meanwhile_does_not_make_this_pull_up_to_date(four_layers, monkeypatch):
    """While this pull downloads, another process pulls (and tags) the same image to the end;
    this pull fetched bytes all the same, so it says "Downloaded newer image"."""
    from imgctl.cli import pull_progress as pullcmd

    name, img = four_layers
    other = []
    show = pullcmd.PlainProgress.__call__

    def meanwhile(self, e):
        if e.kind == "downloading" and not other:
            other.append(subprocess.run([sys.executable, "-m", "imgctl", "pull", "-q", name],
                                        capture_output=True, text=True, timeout=60))
        show(self, e)

    with monkeypatch.context() as m:  # (not monkeypatch.undo(): that would undo the isolated environment too)
        m.setattr(pullcmd.PlainProgress, "__call__", meanwhile)
        r = run("pull", name)
    assert (other[0].returncode, other[0].stdout) == (0, f"{name}\n")
    assert r.code == 0, r.err
    assert r.lines[-2:] == [f"Status: Downloaded newer image for {name}", name]
    assert run("pull", name).lines[-2:] == [f"Status: Image is up to date for {name}", name]


# -- pull -a ----------------------------------------------------------------------------------
def test_pull_all_tags_prints_a_digest_line_per_tag(registry, unique_repo):
    imgs = {"a": one_layer_image("a"), "b": one_layer_image("b")}
    for tag, img in imgs.items():
        push_image(registry.url, unique_repo, img, tag=tag)
    repo = f"{registry.host}/{unique_repo}"
    r = run("pull", "-a", repo)
    assert r.code == 0, r.err
    expected = []
    for tag, img in imgs.items():
        i = short(img.layers[0].digest)
        expected += [
            f"{tag}: Pulling from {unique_repo}",
            f"{i}: Pulling fs layer",
            f"{i}: Verifying Checksum",
            f"{i}: Download complete",
            f"{i}: Pull complete",
            f"Digest: {img.manifest_digest}",
        ]
    assert r.lines == expected + [f"Status: Downloaded newer image for {repo}", repo]
    r = run("pull", "-a", repo)
    assert r.lines == [
        f"a: Pulling from {unique_repo}", f"Digest: {imgs['a'].manifest_digest}",
        f"b: Pulling from {unique_repo}", f"Digest: {imgs['b'].manifest_digest}",
        f"Status: Image is up to date for {repo}", repo,
    ]


# -- rmi --------------------------------------------------------------------------------------
def test_rmi_last_reference_untags_the_repo_digest(registry, unique_repo, store_root):
    img = one_layer_image("rmi")
    push_image(registry.url, unique_repo, img, tag="v1")
    repo = f"{registry.host}/{unique_repo}"
    assert run("pull", "-q", f"{repo}:v1").code == 0
    assert run("tag", f"{repo}:v1", f"{repo}:v2").code == 0
    # Another tag of the repository remains: the digest reference stays, as in docker.
    assert run("rmi", f"{repo}:v2").lines == [f"Untagged: {repo}:v2"]
    r = run("rmi", f"{repo}:v1")
    assert r.code == 0, r.err
    assert r.lines == [
        f"Untagged: {repo}:v1",
        f"Untagged: {repo}@{img.manifest_digest}",
        f"Deleted: {img.config_digest}",
        f"Deleted: {img.layers[0].digest}",
        f"Deleted: {img.manifest_digest}",
    ]
    # By ID: tag lines, then the digest line, then what was deleted.
    assert run("pull", "-q", f"{repo}:v1").code == 0
    r = run("rmi", short(img.config_digest))
    assert r.lines[:3] == [f"Untagged: {repo}:v1", f"Untagged: {repo}@{img.manifest_digest}", f"Deleted: {img.config_digest}"]
    assert blob_files(store_root) == {}


# -- config.toml --------------------------------------------------------------------------------
COMMANDS = [
    ["images"], ["images", "-q"], ["tag", "a", "b"], ["rmi", "a"], ["inspect", "a"], ["history", "a"],
    ["verify"], ["system", "df"], ["image", "prune", "-f"], ["tags", "127.0.0.1:1/x"], ["pull", "x"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_every_command_refuses_a_broken_config(cfg_file, args, store_root):
    cfg_file.write_text("max-download-attempts = 3\nmax-concurrent-downloads = 0\n")
    r = run(*args)
    assert (r.code, r.out) == (1, "")
    assert r.err == f"Error: {cfg_file}: max-concurrent-downloads must be an integer from 1 to 64 (at line 2)\n"
    assert not (store_root / "index.db").exists()  # refused before anything was opened


@pytest.mark.parametrize(
    "text, message",
    [
        ('insecure-registries = [\n  "ok.example:5000",\n  "not a host",\n]\n',
         "insecure-registries: 'not a host' is not a host[:port] or a CIDR network (at line 3)"),
        ('insecure-registries = ["10.0.0.0/33"]\n',
         "insecure-registries: '10.0.0.0/33' is not a CIDR network such as 10.0.0.0/8 (at line 1)"),
        ('insecure-registries = ["host:99999"]\n',
         "insecure-registries: 'host:99999' is not a host[:port] or a CIDR network (at line 1)"),
        ('insecure-registries = "host:5000"\n',
         "insecure-registries must be a list of host[:port] or CIDR strings (at line 1)"),
        ('# mirrors\n\n[registries."quay.io"]\nmirrors = ["https://q.example:0x50"]\n',
         "registries.quay.io.mirrors: invalid mirror URL 'https://q.example:0x50' (not a valid host[:port]) (at line 4)"),
        ('[registries."bad host"]\nmirrors = []\n',
         "registries.'bad host': 'bad host' is not a registry host[:port] (at line 1)"),
        ('[registries."quay.io"]\nmirror = []\n', "unknown key 'mirror' in registries.'quay.io' (at line 2)"),
        ('registries."quay.io".mirrors = ["ftp://x"]\n',
         "registries.quay.io.mirrors: invalid mirror URL 'ftp://x' (expected https://host[:port][/path]) (at line 1)"),
        ('registry-mirrors = ["https://user:pw@m.example"]\n',
         "registry-mirrors: mirror URL https://...@m.example: credentials do not belong in a URL; use 'imgctl login' (at line 1)"),
        ('index-server = "https://bad_host"\n', "index-server must be a URL such as https://index.docker.io (at line 1)"),
        ('certs-dir = "config.toml"\n', None),  # a file, not a directory
        ('max-layers = 0\n', "max-layers must be an integer from 1 to 100,000 (at line 1)"),
        ('a = 1\nb = [\n  1,\n  oops\n]\n', "invalid TOML: Invalid value (at line 4, column 3)"),
        ('x = "unterminated\n', None),
    ],
)
def test_config_entries_are_validated_with_file_key_and_line(cfg_file, text, message):
    cfg_file.write_text(text)
    r = run("images")
    assert r.code == 1 and r.out == ""
    assert r.err.count("\n") == 1 and r.err.startswith(f"Error: {cfg_file}: ")
    if message is not None:
        assert r.err == f"Error: {cfg_file}: {message}\n"
    else:
        assert re.search(r"\(at line \d+(, column \d+)?\)\n$", r.err) or "is not a directory (at line 1)" in r.err, r.err


def test_valid_config_is_accepted_and_help_ignores_a_broken_one(cfg_file):
    cfg_file.write_text(
        'insecure-registries = ["10.0.0.0/8", "registry.local:5000", "[::1]:5000", "http://old.example:80/"]\n'
        'max-layers = 20000\n'
        '[registries."127.0.0.1:5000"]\nmirrors = ["http://[::1]:5001/cache", "https://m.example"]\n'
    )
    assert run("images", "-q") .code == 0
    from imgctl.config import load_config

    cfg = load_config(cfg_file)
    assert cfg.insecure_registries == ("10.0.0.0/8", "registry.local:5000", "[::1]:5000", "old.example:80")
    assert cfg.max_layers == 20000
    cfg_file.write_text("max-layers = 'many'\n")
    r = run("images", "--help")
    assert r.code == 0 and "Usage:" in r.out
