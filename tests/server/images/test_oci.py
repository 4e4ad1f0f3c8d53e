"""Pulls from a real registry on 127.0.0.1 (Debian's docker-registry), of images built here.

What a caller of ``pull`` sees: the files, owners and deletions of every layer,
the config, the digest, the Python found, progress lines, the cache (a second
pull unpacks nothing; by digest it needs no registry), clear errors, and a
crashed pull that leaves nothing looking complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from coldsnap.server.images.oci import ImagePython, PulledImage, PullError, pull
from tests.server.images.conftest import TINY, PushedImage
from tests.server.images.registry import ImageContent, LocalRegistry, free_port, push_image

REPO = Path(__file__).resolve().parents[3]


class Lines(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)

    def text(self) -> str:
        return "\n".join(self)


def test_pull_unpacks_every_layer_with_owners_and_the_config(tiny_image: PushedImage,
                                                             cache_dir: Path) -> None:
    image = pull(tiny_image.ref, cache_dir, Lines())
    root = image.rootfs
    assert (root / "app" / "hello.txt").read_text() == "hello from the image\n"
    assert (root / "app" / "second.txt").read_text() == "from layer two\n"
    assert not (root / "app" / "gone.txt").exists()  # whited out by the last layer
    secret = (root / "app" / "secret.txt").stat()
    assert (secret.st_uid, secret.st_gid, secret.st_mode & 0o777) == (1234, 4321, 0o640)
    assert os.readlink(root / "bin" / "sh") == "busybox"
    assert image.digest == tiny_image.digest
    assert root == cache_dir / tiny_image.digest.split(":")[1] / "rootfs"
    assert root.parent.stat().st_mode & 0o777 == 0o700  # the host's users can't reach in
    assert image.env == TINY.env
    assert (image.workdir, image.cmd, image.entrypoint, image.user) == (
        "/app", ("/bin/sh", "-c", "cat hello.txt"), (), "")
    assert image.python == ImagePython("/usr/local/bin/python3", "3.12")
    assert image.ref == tiny_image.ref and not image.from_cache


def test_pull_reports_progress(tiny_image: PushedImage, cache_dir: Path) -> None:
    lines = Lines()
    pull(tiny_image.ref, cache_dir, lines)
    text = lines.text()
    assert "resolving the tag with the registry" in text
    # Two file layers and the whiteout layer.
    assert "pulling layer 1 of 3" in text and "pulling layer 3 of 3" in text
    assert "unpacking 3 layers" in text
    assert f"pulled {tiny_image.digest[:19]} in " in lines[-1]
    assert "Python 3.12 at /usr/local/bin/python3" in lines[-1]


def test_second_pull_is_a_cache_hit(tiny_image: PushedImage, cache_dir: Path) -> None:
    first = pull(tiny_image.ref, cache_dir, Lines())
    (first.rootfs / "marker").write_text("not unpacked again")
    lines = Lines()
    again = pull(tiny_image.ref, cache_dir, lines)
    assert again.from_cache and again.rootfs == first.rootfs
    assert (again.rootfs / "marker").exists()
    assert again.to_dict() == first.to_dict()
    assert "cached" in lines[-1] and not any("pulling" in line for line in lines)


def test_by_digest_needs_no_registry_a_tag_does(tmp_path: Path, cache_dir: Path) -> None:
    own = LocalRegistry(tmp_path / "registry").start()
    try:
        digest = push_image(own, "app", "7", TINY, tmp_path / "build")
        pull(f"{own.address}/app:7", cache_dir, Lines())
    finally:
        own.stop()
    by_digest = f"{own.address}/app@{digest}"
    lines = Lines()
    image = pull(by_digest, cache_dir, lines)
    assert image.from_cache and image.ref == by_digest
    assert (image.rootfs / "app" / "hello.txt").exists()
    assert not any("resolving" in line for line in lines)
    with pytest.raises(PullError) as raised:
        pull(f"{own.address}/app:7", cache_dir, Lines())
    message = str(raised.value)
    assert f"the registry {own.address} can't be reached" in message
    assert f"use '{by_digest}' to use it without the registry" in message


def test_unknown_tag_says_so(tiny_image: PushedImage, cache_dir: Path) -> None:
    ref = tiny_image.ref.replace(":1", ":no-such-tag")
    with pytest.raises(PullError) as raised:
        pull(ref, cache_dir, Lines())
    assert f"{ref} is not in the registry" in str(raised.value)
    assert "skopeo list-tags docker://" in str(raised.value)
    assert not cache_dir.exists() or not any(cache_dir.glob("[0-9a-f]*"))


def test_unreachable_registry_says_so(cache_dir: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(PullError) as raised:
        pull(f"{address}/tiny:1", cache_dir, Lines())
    message = str(raised.value)
    assert f"the registry {address} can't be reached" in message
    assert "connection refused" in message  # skopeo's own words are kept


def test_registry_that_wants_credentials_says_log_in(tmp_path: Path, cache_dir: Path) -> None:
    guarded = LocalRegistry(tmp_path / "guarded", auth="silly").start()
    try:
        with pytest.raises(PullError) as raised:
            pull(f"{guarded.address}/tiny:1", cache_dir, Lines())
    finally:
        guarded.stop()
    assert f"the registry {guarded.address} wants credentials" in str(raised.value)
    assert f"skopeo login {guarded.address}" in str(raised.value)


def test_tls_verification_asked_of_a_plain_http_registry(tiny_image: PushedImage,
                                                         cache_dir: Path) -> None:
    with pytest.raises(PullError) as raised:
        pull(tiny_image.ref, cache_dir, Lines(), insecure=False)
    assert "speaks plain HTTP, not HTTPS" in str(raised.value)
    assert "insecure=True" in str(raised.value)


def test_without_skopeo_says_how_to_install(tiny_image: PushedImage, cache_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty dir: no skopeo, no umoci
    with pytest.raises(PullError) as raised:
        pull(tiny_image.ref, cache_dir, Lines())
    assert "skopeo not installed" in str(raised.value)
    assert "run scripts/setup.sh as root, or: apt-get install -y skopeo umoci" in str(
        raised.value)


CRASHING_PULL = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from coldsnap.server.images.oci import pull

    def progress(line):
        print(line, flush=True)
        if line.startswith("unpacking"):  # the layers are copied, the rootfs not yet made
            os.kill(os.getpid(), signal.SIGKILL)

    pull(sys.argv[1], Path(sys.argv[2]), progress)
    """
)


def test_crashed_pull_leaves_nothing_complete(tiny_image: PushedImage, cache_dir: Path) -> None:
    crashed = subprocess.run([sys.executable, "-c", CRASHING_PULL, tiny_image.ref,
                              str(cache_dir)], capture_output=True, text=True, cwd=REPO,
                             check=False)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    final = cache_dir / tiny_image.digest.split(":")[1]
    assert not final.exists()
    leftovers = list(cache_dir.glob(".partial-*"))
    assert len(leftovers) == 1 and (leftovers[0] / "layout").is_dir()
    image = pull(tiny_image.ref, cache_dir, Lines())
    assert not image.from_cache and image.rootfs == final / "rootfs"
    assert not list(cache_dir.glob(".partial-*"))  # swept: its process is gone


def test_incomplete_digest_dir_is_not_taken_for_a_hit(tiny_image: PushedImage,
                                                       cache_dir: Path) -> None:
    final = cache_dir / tiny_image.digest.split(":")[1]
    (final / "rootfs").mkdir(parents=True)  # as if left by hand, without image.json
    image = pull(tiny_image.ref, cache_dir, Lines())
    assert not image.from_cache
    assert (image.rootfs / "app" / "hello.txt").exists()


def test_concurrent_pulls_of_one_digest_agree(tiny_image: PushedImage, cache_dir: Path) -> None:
    results: list[PulledImage | BaseException] = []

    def one() -> None:
        try:
            results.append(pull(tiny_image.ref, cache_dir, Lines()))
        except BaseException as exc:  # reported by the assert below
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, PulledImage) for r in results), results
    assert {r.rootfs for r in results if isinstance(r, PulledImage)} == {
        cache_dir / tiny_image.digest.split(":")[1] / "rootfs"}
    assert not list(cache_dir.glob(".partial-*")) and not list(cache_dir.glob(".trash-*"))


def test_image_without_python(registry: LocalRegistry, tmp_path: Path, cache_dir: Path) -> None:
    bare = ImageContent(layers=[{"/etc/motd": ("hi\n", 0o644)}], env={"PATH": "/bin"})
    digest = push_image(registry, "bare", "1", bare, tmp_path)
    image = pull(f"{registry.address}/bare@{digest}", cache_dir, Lines())
    assert image.python is None and image.workdir == "/" and image.cmd == ("/bin/sh",)
