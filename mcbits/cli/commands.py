"""Subcommands of the `mcbits` CLI. Each module that adds one lists it in ALL."""

from __future__ import annotations

import click

from mcbits.cli.options import force_option

ALL: list[click.Command] = []


# --- mcbits fetch (external artifacts: data sets, published checkpoints) -----------------------


@click.group("fetch")
def fetch() -> None:
    """Fetch and verify external artifacts (data sets, published checkpoints).

    Sources, in order: MCBITS_MIRROR, --mirror, system folders, the download cache
    (MCBITS_CACHE, default ~/.cache/mcbits), then the official URLs (unless MCBITS_OFFLINE=1).
    """


# every fetch command takes the same local-mirror option
mirror_option = click.option(
    "--mirror",
    type=click.Path(file_okay=False),
    default=None,
    help="A local mirror folder (tried after MCBITS_MIRROR).",
)

# and the same --force (mcbits.outputs: an existing non-empty --dest is refused without it)
dest_force_option = force_option(
    "Write into an existing non-empty --dest, replacing only the files this command writes "
    "there (every other file is kept)."
)


def _check_dest(dest: str, mirror: str | None, force: bool, example: str, ours: str):
    """--dest by mcbits.outputs' rule: never a mirror or the download cache (nor a folder holding
    one), never `.`, an existing non-empty folder only with --force."""
    from mcbits.data.fetch import cache_dir, mirror_roots
    from mcbits.outputs import check_output

    sources = [("mirror", root) for root in mirror_roots(mirror)] + [("download cache", cache_dir())]
    return check_output(dest, kind="folder", inputs=sources, force=force, label="--dest",
                        example=example, ours=ours)


@fetch.command("list")
def fetch_list() -> None:
    """List every registered artifact, its files, checksums and sources."""
    from mcbits.data.registry import describe_registry

    for row in describe_registry():
        click.echo(f"{row['artifact']}: {row['title']}")
        for source in row["sources"]:  # type: ignore[union-attr]
            click.echo(f"  source  {source}")
        for name, digests in row["files"].items():  # type: ignore[union-attr]
            click.echo(f"  file    {name}")
            for digest in digests:
                click.echo(f"            {digest}")


@fetch.command("dataset")
@click.argument("dataset_id")
@click.option(
    "--part", type=click.Choice(["test", "train", "all"]), default="test", show_default=True
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the files [default: ./<DATASET_ID>].",
)
@mirror_option
@dest_force_option
def fetch_dataset(dataset_id: str, part: str, dest: str | None, mirror: str | None, force: bool) -> None:
    """Place the verified idx files of a data set (emnist-mnist, emnist-letters, mnist, ...)."""
    from mcbits.data.datasets import fetch_split, get_dataset
    from mcbits.data.registry import get_artifact
    from mcbits.outputs import check_replaceable

    parts = ["test", "train"] if part == "all" else [part]
    info = get_dataset(dataset_id)
    dest = dataset_id if dest is None else dest
    folder = _check_dest(dest, mirror, force, f"--dest {dataset_id}/", "its idx files")
    sets = [info.test if p == "test" else info.train for p in parts]
    if "test" in parts and info.test_subset is not None:
        sets.append(info.test_subset)
    names = [local for files in sets for name in (files.images, files.labels)
             for local in get_artifact(files.artifact).spec(name).local_names()]
    check_replaceable(folder, names, what="an idx file mcbits fetched")
    for p in parts:
        split = fetch_split(dataset_id, p, dest, mirror=mirror)
        click.echo(f"{split.display_name} ({p}, {split.count} images):")
        for f in (split.images, split.labels):
            click.echo(
                f"  {f.path}  sha256:{f.sha256}  verified by {f.verified_by}  from {f.source}"
            )


@fetch.command("checkpoint")
@click.option("--split", type=click.Choice(["mnist", "letters"]), required=True)
@click.option("--num-particles", type=click.Choice(["1", "5", "50"]), required=True)
@click.option("--dest", type=click.Path(file_okay=False), required=True)
@mirror_option
@dest_force_option
def fetch_checkpoint(split: str, num_particles: str, dest: str, mirror: str | None, force: bool) -> None:
    """Place a published upstream checkpoint (model.pt, train_config.yml), verified by SHA-256."""
    from mcbits.data.checkpoints import fetch_published_checkpoint
    from mcbits.outputs import check_replaceable

    folder = _check_dest(dest, mirror, force, "--dest ckpt/", "model.pt, train_config.yml")
    check_replaceable(folder, ["model.pt", "train_config.yml"], what="a checkpoint file mcbits fetched")
    ckpt = fetch_published_checkpoint(split, int(num_particles), folder, mirror=mirror)
    click.echo(f"{ckpt.model_path}  sha256:{ckpt.sha256}  from {ckpt.source}")
    click.echo(f"{ckpt.config_path}")


@fetch.command("digits")
@click.option("--dataset", "dataset_id", default="emnist-mnist", show_default=True,
              help="The data set whose test images to take (emnist-mnist, emnist-letters, mnist, ...).")
@click.option("--count", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="How many: the first COUNT test images, in the data set's own order.")
@click.option("--dest", type=click.Path(file_okay=False), required=True,
              help="Folder for the PNGs (created; an existing non-empty one needs --force).")
@mirror_option
@dest_force_option
def fetch_digits(dataset_id: str, count: int, dest: str, mirror: str | None, force: bool) -> None:
    """Write the first test images of a data set as 8-bit grayscale 28x28 PNGs (upright, as the
    models see them), named <position>-label-<label>.png: sample inputs for `mcbits encode`."""
    from mcbits.atomic import temporary_folder
    from mcbits.cli.images import write_gray_png_folder
    from mcbits.data.datasets import fetch_split, read_split

    folder = _check_dest(dest, mirror, force, "--dest digits/", "NNNN-label-L.png")
    # the idx files go to a scratch folder beside --dest (one a killed fetch leaves is removed by
    # the next fetch to the same --dest)
    with temporary_folder(folder) as tmp:
        split = fetch_split(dataset_id, "test", tmp, mirror=mirror, progress=False)
        images, labels = read_split(split)
    count = min(count, images.shape[0])
    names = [f"{i:04d}-label-{int(labels[i])}.png" for i in range(count)]
    files = write_gray_png_folder(dest, images[:count].reshape(count, 28, 28), names)
    click.echo(f"{count} {split.display_name} test images -> {dest} ({files[0].name} ... {files[-1].name})")


ALL.append(fetch)

from mcbits.cli.codec import decode_command, encode_command  # noqa: E402

ALL += [encode_command, decode_command]
