"""Every decode within a time and a memory bound known from the file's size and header (issue 13).

Hostile files -- resealed header edits of every field to boundary values, oversized and sparse files
(made with truncate: no disk, no time), a sealed message tail of ~1 GiB, truncations, foreign
files, iterative inference asking for more work than the budget -- are decoded in a child process
(tests/decode_probe.py) that reports each decode's wall time and resident-memory peak
(ru_maxrss). A decode that reads a file it could refuse from its size, or starts work its header
asks for beyond the budget, fails here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fuzzing import FIELDS, SHA, base_cases, repack, reseal

from mcbits.cli.main import main
from mcbits.coding import bitstream, limits
from mcbits.coding import header as fmt
from mcbits.errors import McbitsError

RSS_LIMIT = 1 << 30  # no decode's process above 1 GiB resident
REFUSAL_S = 1.0  # a file refused from its size and header
DECODE_S = 5.0  # any other decode of these small-model files
BOUNDARY = (0, 1, 2, 8, 32, 33, 64, 65, 256, 4097, 65537,
            2**20 + 1, 2**63 - 1, 2**64)
GIB = 1 << 30


def _value(field: str, value: int):
    if field in ("coder.whiten_prior", "portable", "stored"):
        return bool(value & 1)
    if field == "coder.arithmetic":
        return ["exact", "float"][value & 1]
    if field == "coder.coder":
        return value % 8
    if field in ("image_shape", "drawn"):
        return [value, 1] if value & 1 else [value]
    if field == "step_slack":
        return {"drawn": [value, value], "words": [0, value]}
    if field == "posterior":
        return {"iterative": {"steps": value, "lr": 0.5, "num_particles": max(1, value % 70), "seed": 0}}
    if field == "names":
        return ["x" * min(value, 300)] * min(value, 6)
    if field == "encoder":
        return {"cpu": "x" * min(value, 5000)}
    if field == "padding":
        return min(value, 2**16)
    if field in ("images_sha256", "model_sha256"):
        return f"{value % 2**64:016x}"
    return value


def _sealed_sparse(path: Path, body: bytes, size: int) -> None:
    """A file of `size` bytes: `body`, zeros (a hole), and the check of it all (hashed in pieces)."""
    digest = hashlib.sha256(body)
    zeros = bytes(1 << 22)
    left = size - fmt.CHECK_BYTES - len(body)
    while left > 0:
        digest.update(zeros[:min(left, len(zeros))])
        left -= len(zeros)
    with open(path, "wb") as f:
        f.write(body)
        f.truncate(size - fmt.CHECK_BYTES)
        f.seek(size - fmt.CHECK_BYTES)
        f.write(digest.digest()[:fmt.CHECK_BYTES])


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return {case.name: case for case in base_cases(tmp_path_factory.mktemp("bounds"), num_images=1)}


@pytest.fixture(scope="module")
def verdicts(cases, tmp_path_factory):
    """Build every hostile file, decode them all in one child, return {name: verdict}."""
    folder = tmp_path_factory.mktemp("hostile")
    files: dict[str, tuple[Path, str, int | None]] = {}

    def add(name: str, data: bytes | None = None, arithmetic: str = "exact", max_work=None) -> Path:
        path = folder / f"{len(files)}.mcb"
        if data is not None:
            path.write_bytes(data)
        files[name] = (path, arithmetic, max_work)
        return path

    for case in cases.values():
        for field in FIELDS:
            for value in BOUNDARY:
                data = repack(case.data, field, _value(field, value))
                if data is not None:
                    add(f"field {case.name} {field}={value}", data, case.arithmetic)
        for keep in range(0, len(case.data), max(1, len(case.data) // 12)):
            add(f"truncated {case.name} {keep}", case.data[:keep], case.arithmetic)
        add(f"truncated resealed {case.name}", reseal(case.data[:len(case.data) // 2] + bytes(4)),
            case.arithmetic)
    base = cases["bb-elbo"].data if cases["bb-elbo"].data else b""
    npy = io.BytesIO()
    np.save(npy, np.zeros((2, 784), np.uint8))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("x", base)
    for name, data in (("foreign npy", npy.getvalue()), ("foreign zip", zipped.getvalue()),
                       ("foreign version2", b"MCBITS\x02\x00" + base[4:]), ("foreign empty", b""),
                       ("foreign random", os.urandom(300)), ("foreign magic only", b"MCB\x03")):
        add(name, data)

    # oversized and sparse: a 1-image BB-ELBO file (1 lane) with its message tail extended by zeros
    one = cases["stochastic"].data  # 1 lane, 32-bit words
    head = len(one) - len(bitstream.unpack(one)[1]) - fmt.CHECK_BYTES
    body = one[:-fmt.CHECK_BYTES]
    words = (GIB - 64 - len(body)) // 4 * 4
    _sealed_sparse(add("sealed 1 GiB tail"), body, len(body) + words + fmt.CHECK_BYTES)
    with open(add("unsealed 1 GiB tail"), "wb") as f:
        f.write(body)
        f.truncate(len(body) + words + fmt.CHECK_BYTES)
    with open(add("2^30 + 1 bytes"), "wb") as f:
        f.write(one)
        f.truncate(GIB + 1)
    stored = cases["bb-elbo-stored"].data
    with open(add("stored, 64 MiB payload"), "wb") as f:
        f.write(stored[:-fmt.CHECK_BYTES])
        f.truncate(64 << 20)
    assert head > 0

    # work: 1,000 images x 10,000 steps x 6 particles of iterative inference (padding for the bytes)
    header, payload = bitstream.unpack(cases["bb-elbo"].data)
    iterative = {"iterative": {"steps": 10_000, "lr": 0.01, "num_particles": 6, "seed": 0}}
    heavy = fmt.pack({**header, "posterior": iterative, "num_images": 1000,
                      "padding": 1000 - len(payload)}, payload)
    add("work 1000 x 10000 x 6", heavy)
    light = fmt.pack({**header, "posterior": iterative, "num_images": 12,
                      "padding": max(0, 12 - len(payload))}, payload)
    add("work 12 x 10000 x 6, budget 100000", light, max_work=100_000)
    add("work 12 x 10000 x 6", light)

    # last (ru_maxrss only grows): a sealed 1-image file of 256 MiB, within what its header allows
    _sealed_sparse(add("sealed 256 MiB tail"), body, len(body) + (256 << 20) + fmt.CHECK_BYTES)

    jobs = [{"path": str(path), "arithmetic": arithmetic, "sha": SHA, "max_work": max_work,
             "warmup": str(folder / "warm.mcb")} for path, arithmetic, max_work in files.values()]
    (folder / "warm.mcb").write_bytes(cases["bb-is"].data)
    (folder / "jobs.json").write_text(json.dumps(jobs))
    probe = Path(__file__).with_name("decode_probe.py")
    run = subprocess.run([sys.executable, str(probe), str(folder / "jobs.json")], capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    by_path = {line["path"]: line for line in lines}
    return {name: by_path[str(path)] for name, (path, _, _) in files.items()}


def test_no_decode_passes_the_time_or_memory_bound_or_raises_a_traceback(verdicts):
    assert len(verdicts) > 500
    for name, v in verdicts.items():
        assert v["kind"] != "traceback", (name, v)
        assert v["rss"] < RSS_LIMIT, (name, v)
        assert v["seconds"] < DECODE_S, (name, v)


@pytest.mark.parametrize("name", ["sealed 1 GiB tail", "unsealed 1 GiB tail", "2^30 + 1 bytes",
                                  "stored, 64 MiB payload"])
def test_oversized_files_are_refused_from_their_size_before_their_payload_is_read(verdicts, name):
    v = verdicts[name]
    assert v["kind"] == "error", v
    assert v["seconds"] < REFUSAL_S, v
    assert v["rss_growth"] < 32 << 20, v  # the payload was never read


def test_the_sealed_gib_file_names_the_memory_it_would_need(verdicts):
    detail = verdicts["sealed 1 GiB tail"]["detail"]
    assert "from its size and header" in detail and "above the limit of 1 GiB" in detail, detail
    assert "more than 1073741824" in verdicts["2^30 + 1 bytes"]["detail"]
    assert "pack into" in verdicts["stored, 64 MiB payload"]["detail"]


def test_a_large_file_within_its_header_is_read_once(verdicts):
    v = verdicts["sealed 256 MiB tail"]
    assert v["kind"] == "error", v
    # the payload (256 MiB) and the message's words (256 MiB): no second copy of either
    assert v["rss_growth"] < 700 << 20, v


def test_work_beyond_the_budget_is_refused_before_decoding(verdicts):
    heavy = verdicts["work 1000 x 10000 x 6"]
    assert heavy["kind"] == "error" and heavy["seconds"] < REFUSAL_S, heavy
    assert "60,002,000 decoder-network rows" in heavy["detail"], heavy
    assert f"{limits.default_work_budget(1000):,}" in heavy["detail"]  # 8,192 rows per image
    budget = verdicts["work 12 x 10000 x 6, budget 100000"]
    assert "720,024 decoder-network rows" in budget["detail"] and "100,000" in budget["detail"], budget
    # the 12-image file with 10,000 steps x 6 particles: refused at once by the default
    # per-image budget, naming the work and the budget
    small = verdicts["work 12 x 10000 x 6"]
    assert small["kind"] == "error" and small["seconds"] < REFUSAL_S, small
    assert "720,024 decoder-network rows" in small["detail"] and "98,304" in small["detail"], small


def test_the_default_budget_covers_the_pipeline_and_the_cli_defaults():
    pipeline = {"stored": False, "num_images": 10_000, "coder": {"num_particles": 50},
                "posterior": {"iterative": {"steps": 50, "num_particles": 50}}}
    assert limits.decode_work(pipeline) <= limits.default_work_budget(10_000)
    cli = {"stored": False, "num_images": limits.MAX_IMAGES, "coder": {"num_particles": 1}, "posterior": {}}
    assert limits.decode_work(cli) <= limits.default_work_budget(limits.MAX_IMAGES)
    widest = {"stored": False, "num_images": 1, "coder": {"num_particles": 4096}, "posterior": {}}
    assert limits.decode_work(widest) <= limits.default_work_budget(1)  # BB-IS at the largest N
    assert limits.decode_work({**cli, "stored": True}) == 0


def test_mcbits_decode_max_work_refuses_and_names_the_flag(cases, tmp_path):
    header, payload = bitstream.unpack(cases["bb-elbo"].data)
    iterative = {"iterative": {"steps": 10_000, "lr": 0.01, "num_particles": 6, "seed": 0}}
    (tmp_path / "w.mcb").write_bytes(fmt.pack({**header, "posterior": iterative}, payload))
    (tmp_path / "model.pt").write_bytes(b"never loaded")
    args = ["decode", str(tmp_path / "w.mcb"), str(tmp_path / "o.npy"), "--checkpoint",
            str(tmp_path / "model.pt")]
    result = CliRunner().invoke(main, [*args, "--max-work", "1000"])
    assert result.exit_code != 0
    out = result.output + str(result.exception or "")
    assert "60,002 decoder-network rows" in out and "1,000" in out and "--max-work 60002" in out, out
    with pytest.raises(McbitsError, match="work budget of 1,000"):
        bitstream.decode_from_file(tmp_path / "w.mcb", None, model_sha256=SHA, max_work=1000)
