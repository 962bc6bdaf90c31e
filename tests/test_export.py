"""`imgctl export`: flattened root filesystems, hostile layers, and the same tree as `umoci unpack`."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.support.breakout import build_layer, cases, snapshot
from tests.support.cli import run
from tests.support.images import directory, file, hardlink, make_image, make_layer, opaque, push_image, symlink, whiteout

UMOCI = shutil.which("umoci")
SKOPEO = shutil.which("skopeo")


def pull(registry, repo: str, img, tag: str) -> str:
    push_image(registry.url, repo, img, tag=tag)
    name = f"{registry.host}/{repo}:{tag}"
    r = run("pull", "-q", name)
    assert r.code == 0, r.err
    return name


def tree(root: Path) -> dict[str, tuple]:
    """path -> (type, mode, content hash or link target) for everything under ROOT."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
    return out


def layered_image(compression: str = "gzip"):
    """Three layers: files, dirs, links, modes; then whiteouts, an opaque dir, replacements, new hardlinks."""
    l1 = make_layer(
        [
            directory("bin"), file("bin/busybox", b"\x7fELF" + b"b" * 3000, mode=0o755),
            symlink("bin/sh", "busybox"), hardlink("bin/ls", "bin/busybox"),
            directory("etc"), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), file("etc/shadow", "root:*:1::::::\n", mode=0o600),
            directory("etc/conf.d"), file("etc/conf.d/a.conf", "a=1\n"), file("etc/conf.d/b.conf", "b=1\n"),
            directory("usr"), directory("usr/lib"), file("usr/lib/libc.so", b"libc" * 500, mode=0o755),
            symlink("lib", "usr/lib"), directory("tmp", mode=0o1777), directory("var"), directory("var/cache"),
            file("var/cache/big", b"\0" * 20000), file("var/cache/small", "s"), file("usr/bin-suid", b"s", mode=0o4755),
            directory("opt", mode=0o700), file("opt/secret", "x", mode=0o400),
        ],
        compression,
        sort=False,
    )
    l2 = make_layer(
        [
            whiteout("var/cache/big"), opaque("etc/conf.d"), file("etc/conf.d/c.conf", "c=1\n"),
            file("etc/passwd", "root:x:0:0:root:/root:/bin/ash\n", mode=0o644),
            file("lib/libz.so", b"zlib" * 100),  # through the symlink lib -> usr/lib
            directory("home", mode=0o750), directory("home/user"), file("home/user/.profile", "export A=1\n"),
            whiteout("opt"), directory("srv"), file("srv/data", b"data"),
        ],
        compression,
        sort=False,
    )
    l3 = make_layer(
        [
            whiteout("bin/busybox"),  # bin/ls keeps the content (a hardlink made in a lower layer)
            file("bin/busybox", b"\x7fELF" + b"B" * 10, mode=0o755), hardlink("bin/ash", "bin/busybox"),
            whiteout("srv"), directory("srv", mode=0o700), file("srv/new", "n"),
            symlink("etc/mtab", "/proc/mounts"), directory("etc/conf.d/sub"), opaque("etc/conf.d/sub"),
            whiteout("home/user/.profile"), whiteout("does-not-exist"),
        ],
        compression,
        sort=False,
    )
    return make_image([l1, l2, l3])


def test_export_dir_and_tar(registry, unique_repo, tmp_path):
    name = pull(registry, unique_repo, layered_image("zstd"), "v1")
    out = tmp_path / "rootfs"
    r = run("export", "--dir", out, name)
    assert (r.code, r.out, r.err) == (0, "", "")
    t = tree(out)
    assert t["bin/busybox"][0] == "file" and t["bin/sh"] == ("link", "busybox")
    assert (out / "bin" / "ls").read_bytes() == b"\x7fELF" + b"b" * 3000  # the old inode
    assert os.lstat(out / "bin" / "ash").st_ino == os.lstat(out / "bin" / "busybox").st_ino
    assert (out / "etc" / "passwd").read_text() == "root:x:0:0:root:/root:/bin/ash\n"
    assert sorted(os.listdir(out / "etc" / "conf.d")) == ["c.conf", "sub"]
    assert (out / "usr" / "lib" / "libz.so").exists() and t["lib"] == ("link", "usr/lib")
    assert not (out / "var" / "cache" / "big").exists() and (out / "var" / "cache" / "small").exists()
    assert not (out / "opt").exists()
    assert sorted(os.listdir(out / "srv")) == ["new"] and t["srv"] == ("dir", 0o700)
    assert t["tmp"] == ("dir", 0o1777) and t["usr/bin-suid"][1] == 0o4755 and t["home"] == ("dir", 0o750)
    assert os.listdir(out / "home" / "user") == []

    # the tar holds the same tree, hardlinks as links, owners and modes from the layers
    tar_path = tmp_path / "rootfs.tar"
    r = run("export", "-o", tar_path, name)
    assert (r.code, r.err) == (0, ""), r.err
    with tarfile.open(tar_path) as tf:
        infos = {m.name: m for m in tf.getmembers()}
        extracted = tmp_path / "from-tar"
        tf.extractall(extracted, filter="fully_trusted")  # our own output; keeps setuid and sticky bits
    assert set(infos) == set(t)
    assert all(not n.startswith(("/", "../")) for n in infos)
    assert infos["bin/ash"].islnk() and infos["bin/ash"].linkname == "bin/busybox" or infos["bin/busybox"].islnk()
    assert infos["etc/shadow"].mode == 0o600 and infos["tmp"].mode == 0o1777
    assert tree(extracted) == t
    assert not list(tmp_path.glob(".rootfs.tar.*")) and not list(tmp_path.glob(".imgctl-export-*"))


def test_export_errors(registry, unique_repo, tmp_path):
    name = pull(registry, unique_repo, make_image([make_layer({"a": "1"})]), "v1")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    r = run("export", "--dir", tmp_path / "full", name)
    assert (r.code, r.err) == (2, f"Error: {tmp_path / 'full'} is not empty; export needs a new or empty directory\n")
    assert os.listdir(tmp_path / "full") == ["x"]
    r = run("export", "--dir", tmp_path / "d", "-o", tmp_path / "f.tar", name)
    assert r.code == 2
    r = run("export", "--dir", tmp_path / "d", "nosuch")
    assert (r.code, r.err) == (1, "Error: No such image: nosuch:latest\n")
    assert not (tmp_path / "d").exists()
    (tmp_path / "empty").mkdir()
    assert run("export", "--dir", tmp_path / "empty", name).code == 0
    assert (tmp_path / "empty" / "a").read_text() == "1"


def test_export_refuses_compression_bombs(registry, unique_repo, tmp_path, store_root, monkeypatch):
    import imgctl.export
    from imgctl.errors import VerificationError
    from imgctl.export import export_to_dir
    from imgctl.store import Store

    bomb = make_layer({"zeros": b"\0" * (8 * 1024 * 1024)}, "gzip", level=9)
    name = pull(registry, unique_repo, make_image([bomb]), "bomb")
    store = Store(store_root)
    try:
        monkeypatch.setattr(imgctl.export, "RATIO_FLOOR", 1024 * 1024)
        with pytest.raises(VerificationError, match="inflates .* times"):
            export_to_dir(store, name, tmp_path / "b1", max_ratio=50)
        with pytest.raises(VerificationError, match="more than the limit of 1000000"):
            export_to_dir(store, name, tmp_path / "b2", max_layer_size=1_000_000)
        assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()
        export_to_dir(store, name, tmp_path / "ok")  # the defaults let an ordinary sparse file through
    finally:
        store.close()


@pytest.fixture
def sandbox(tmp_path):
    sb = tmp_path / "sb"
    outside = sb / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "victim").write_bytes(b"precious\n")
    (outside / "dir" / "inner").write_bytes(b"inner\n")
    return sb, outside


def test_breakout_corpus(registry, unique_repo, sandbox):
    sb, outside = sandbox
    corpus = cases(str(outside))
    assert len(corpus) >= 30
    names = {}
    for i, case in enumerate(corpus):
        img = make_image([build_layer(layer) for layer in case.layers])
        push_image(registry.url, unique_repo, img, tag=f"c{i}")
        names[case.name] = f"{registry.host}/{unique_repo}:c{i}"
        assert run("pull", "-q", names[case.name]).code == 0, case.name
    stray = Path("/tmp/imgctl-breakout")
    assert not stray.exists()
    failures = []
    for case in corpus:
        target = sb / f"rootfs-{case.name}"
        before = snapshot(sb)
        r = run("export", "--dir", target, names[case.name])
        after = snapshot(sb, skip=target)
        if after != before:
            failures.append(f"{case.name}: changed outside the target: {sorted(set(after.items()) ^ set(before.items()))[:4]}")
        if case.expect == "error":
            if r.code != 1 or case.error not in r.err:
                failures.append(f"{case.name}: expected an error with {case.error!r}, got {r.code} {r.err!r}")
            if target.exists():
                failures.append(f"{case.name}: a refused export left {target}")
        else:
            if r.code != 0:
                failures.append(f"{case.name}: expected success, got {r.err!r}")
            elif case.check is not None:
                try:
                    case.check(target)
                except AssertionError as e:
                    failures.append(f"{case.name}: {e}")
            # the tar form of the same image never names anything outside its root
            tar_path = sb.parent / f"{case.name}.tar"
            r = run("export", "-o", tar_path, names[case.name])
            if r.code != 0:
                failures.append(f"{case.name}: tar export failed: {r.err!r}")
            else:
                with tarfile.open(tar_path) as tf:
                    bad = [m.name for m in tf.getmembers() if m.name.startswith("/") or ".." in m.name.split("/") or (m.islnk() and ".." in m.linkname.split("/"))]
                if bad:
                    failures.append(f"{case.name}: tar names outside its root: {bad}")
            if snapshot(sb, skip=target) != before:
                failures.append(f"{case.name}: the tar export changed something outside")
    assert not stray.exists()
    assert (outside / "victim").read_bytes() == b"precious\n" and os.lstat(outside / "victim").st_nlink == 1
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(UMOCI is None or SKOPEO is None, reason="umoci and skopeo are needed (scripts/run-tests installs them)")
def test_same_tree_as_umoci_unpack(registry, unique_repo, tmp_path):
    # umoci (0.4.7) cannot unpack zstd layers: this comparison uses gzip
    name = pull(registry, unique_repo, layered_image("gzip"), "umoci")
    layout = tmp_path / "layout"
    p = subprocess.run(
        [SKOPEO, "copy", "-q", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:img"],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    bundle = tmp_path / "bundle"
    cmd = [UMOCI, "unpack", *([] if os.geteuid() == 0 else ["--rootless"]), "--image", f"{layout}:img", str(bundle)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    mine = tmp_path / "mine"
    r = run("export", "--dir", mine, name)
    assert r.code == 0, r.err
    theirs = tree(bundle / "rootfs")
    ours = tree(mine)
    assert ours == theirs
    assert len(ours) > 25


@pytest.mark.skipif(os.geteuid() != 0, reason="creating device nodes needs root (CI runs as root)")
def test_root_export_creates_only_harmless_device_nodes(registry, unique_repo, tmp_path):
    from tests.support.images import Entry

    layer = build_layer([
        Entry("dev", "dir"),
        Entry("dev/null", "chardev", mode=0o666, devmajor=1, devminor=3),
        Entry("dev/sda", "blockdev", mode=0o666, devmajor=8, devminor=0),
        Entry("dev/mem", "chardev", mode=0o666, devmajor=1, devminor=1),
    ])
    name = pull(registry, unique_repo, make_image([layer]), "devs")
    out = tmp_path / "fs"
    r = run("export", "--dir", str(out), name)
    assert r.code == 0, r.err
    st = os.lstat(out / "dev" / "null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert not os.path.lexists(out / "dev" / "sda")  # raw disk access: never handed out
    assert not os.path.lexists(out / "dev" / "mem")
    assert "2 device node(s) not created" in r.err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch to an unprivileged user")
def test_export_tar_as_a_normal_user_with_unreadable_files_and_read_only_dirs(registry, unique_repo):
    """Fedora-like images: /etc/shadow is mode 0000 and /usr/bin is 0555; a normal user's export works."""
    import tempfile

    from imgctl.export import export_to_file
    from imgctl.store import Store

    layer = make_layer([
        directory("etc", 0o755),
        file("etc/shadow", b"root:*:19000::::::\n", 0o000),
        directory("usr", 0o755),
        directory("usr/bin", 0o555),
        file("usr/bin/tool", b"#!/bin/sh\n", 0o755),
    ], "gzip")
    push_image(registry.url, unique_repo, make_image([layer]), tag="fedora-like")
    name = f"{registry.host}/{unique_repo}:fedora-like"
    base = Path(tempfile.mkdtemp(prefix="imgctl-nobody-"))  # pytest's tmp_path is private to root
    try:
        root, work = base / "root", base / "work"
        assert run("--root", str(root), "pull", "-q", name).code == 0
        work.mkdir()
        subprocess.run(["chmod", "-R", "a+rwX", str(base)], check=True)
        # A forked child drops to nobody (65534) and runs the export; everything it needs is
        # imported already, so the unprivileged user needs no access to this checkout or Python.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                export_to_file(Store(root), name, work / "fs.tar")
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent through a file
                (work / "child-error").write_text(f"{type(e).__name__}: {e}")
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        err = work / "child-error"
        assert os.waitstatus_to_exitcode(status) == 0, err.read_text() if err.exists() else ""
        with tarfile.open(work / "fs.tar") as tf:
            members = {m.name.removeprefix("./").strip("/"): m for m in tf.getmembers()}
            assert tf.extractfile(members["etc/shadow"]).read() == b"root:*:19000::::::\n"
        assert stat.S_IMODE(members["etc/shadow"].mode) == 0o000
        assert stat.S_IMODE(members["usr/bin"].mode) == 0o555
        assert [p.name for p in work.iterdir()] == ["fs.tar"]  # no scratch copy left behind
    finally:
        shutil.rmtree(base, ignore_errors=True)
