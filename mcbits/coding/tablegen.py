"""Generate the fixed-point function tables of the exact coding arithmetic.

Every value is computed with Python's `decimal` module (a software arithmetic whose exp and ln are
correctly rounded and independent of the platform's libm) at 50 significant digits, then scaled to
an integer and rounded half to even. The tables ship with the package (`tables/fixed_point.npz`);
tests recompute a sample of entries and check the file's SHA-256, so a changed table is caught.

Run `python -m mcbits.coding.tablegen` to rewrite the file (only needed if the spec below changes,
which changes the format version).
"""

from __future__ import annotations

import decimal
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np

TABLE_FILE = Path(__file__).with_name("tables") / "fixed_point.npz"

# name: (first x, step as a power of two, entries, output fraction bits)
SPEC: dict[str, tuple[int, int, int, int]] = {
    "tanh": (-8, 10, 16385, 30),       # tanh(x), x in [-8, 8]
    "sigmoid": (-32, 8, 16385, 40),    # 1 / (1 + e^-x), x in [-32, 32]
    "phi": (-8, 10, 16385, 40),        # standard normal CDF, x in [-8, 8]
    "log2": (1, 10, 1025, 32),         # log2(x), x in [1, 2]
    "exp2": (0, 10, 1025, 30),         # 2^x, x in [0, 1]
}
LOG2E_BITS = 30  # log2(e) as an integer at 2^-30

_CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)


def _phi(x: Decimal) -> Decimal:
    """Standard normal CDF by its everywhere-convergent series: 1/2 + pdf(x) sum x^(2n+1)/(2n+1)!!."""
    with decimal.localcontext(_CONTEXT) as ctx:
        ctx.prec = 80  # the series' terms reach e^(x^2/2) before the pdf scales them down
        if x == 0:
            return Decimal("0.5")
        term = x
        total = x
        x2 = x * x
        n = 0
        while True:
            n += 1
            term = term * x2 / (2 * n + 1)
            total += term
            if abs(term) < Decimal(10) ** -75 * abs(total):
                break
        pdf = (-x2 / 2).exp() / (2 * Decimal(314159265358979323846264338327950288419716939937510582097494459)
                                 .scaleb(-62)).sqrt()
        return Decimal("0.5") + pdf * total


def _function(name: str, x: Decimal) -> Decimal:
    with decimal.localcontext(_CONTEXT):
        if name == "tanh":
            e = (2 * x).exp()
            return (e - 1) / (e + 1)
        if name == "sigmoid":
            return 1 / (1 + (-x).exp())
        if name == "phi":
            return _phi(x)
        if name == "log2":
            return x.ln() / Decimal(2).ln()
        if name == "exp2":
            return (x * Decimal(2).ln()).exp()
    raise KeyError(name)


def table_entry(name: str, index: int) -> int:
    """The integer at `index` of table `name` (see SPEC)."""
    first, step_bits, _, out_bits = SPEC[name]
    x = Decimal(first) + Decimal(index) / (1 << step_bits)
    value = _function(name, x) * (1 << out_bits)
    return int(value.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))


def log2e_fixed() -> int:
    with decimal.localcontext(_CONTEXT):
        value = (1 / Decimal(2).ln()) * (1 << LOG2E_BITS)
    return int(value.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))


def build_tables() -> dict[str, np.ndarray]:
    """All tables as int64 arrays (and log2e as a 1-element array)."""
    tables: dict[str, np.ndarray] = {}
    for name, (_, _, entries, out_bits) in SPEC.items():
        if name == "phi":
            # symmetric: phi(-x) = 1 - phi(x), computed from the non-negative half (exactly so)
            half = entries // 2
            upper = [table_entry(name, half + i) for i in range(half + 1)]
            values = [(1 << out_bits) - v for v in reversed(upper[1:])] + upper
        else:
            values = [table_entry(name, i) for i in range(entries)]
        tables[name] = np.array(values, dtype=np.int64)
    tables["log2e"] = np.array([log2e_fixed()], dtype=np.int64)
    return tables


def main() -> int:
    tables = build_tables()
    TABLE_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = TABLE_FILE.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **tables)
    tmp.replace(TABLE_FILE)
    print(f"wrote {TABLE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
