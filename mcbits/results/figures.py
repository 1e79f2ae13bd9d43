"""The result figures as PNG files (matplotlib, Agg backend: no display needed).

Each function takes the plot data the aggregate stage writes (pandas frames) and writes one PNG
whose bytes depend only on that data and the matplotlib build (no timestamp; the file's Software
field is left out).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mcbits.atomic import write_bytes_atomic

DPI = 120
SERIES_STYLE = {  # (colour, line style): one colour per coder, solid net, dashed total
    "BB-IS net": ("tab:blue", "-"),
    "BB-IS total": ("tab:blue", "--"),
    "BB-CIS net": ("tab:orange", "-"),
    "BB-CIS total": ("tab:orange", "--"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def rate_vs_particles_png(rates: pd.DataFrame, title: str) -> bytes:
    """Net (solid) and total (dashed) bits/dim of BB-IS and BB-CIS against N, log-scale N."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    x = rates["num_particles"].astype(int)
    for name, (colour, style) in SERIES_STYLE.items():
        if name in rates and rates[name].notna().any():
            ax.plot(x, rates[name], style, color=colour, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(list(x), [str(n) for n in x])
    ax.minorticks_off()
    ax.set_xlabel("particles N (log scale)")
    ax.set_ylabel("bits/dim")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title="coder, rate")
    fig.tight_layout()
    return _png(fig)


def savings_png(savings: pd.DataFrame, title: str) -> bytes:
    """Table 1's savings (%) per setting, as horizontal bars labelled with their values."""
    plt = _pyplot()
    data = savings.dropna(subset=["savings_pct"])
    fig, ax = plt.subplots(figsize=(6.0, 0.6 * max(len(data), 1) + 1.4))
    y = list(range(len(data)))[::-1]
    bars = ax.barh(y, data["savings_pct"], color="tab:green")
    ax.set_yticks(y, list(data["setting"]))
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in data["savings_pct"]], padding=3)
    top = max([float(v) for v in data["savings_pct"]] + [1.0])
    ax.set_xlim(0, top * 1.2)
    ax.set_xlabel("net-rate saving over BB-ELBO (%)")
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def training_curves_png(histories: Mapping[str, pd.DataFrame]) -> bytes:
    """Test (solid) and training (dashed) bits/dim per epoch of each trained model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, history) in enumerate(sorted(histories.items())):
        colour = colours[i % len(colours)]
        ax.plot(history["epoch"], history["test_bpd"], "-", color=colour, marker=".", label=f"{model} test")
        ax.plot(history["epoch"], history["train_bpd"], "--", color=colour, label=f"{model} train")
    epochs = max(int(h["epoch"].max()) for h in histories.values())
    if epochs > 20:
        ax.set_xscale("log")
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits/dim")
    ax.set_title("Training curves")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=1 if len(histories) < 4 else 2)
    fig.tight_layout()
    return _png(fig)


def finite(values) -> bool:
    """True when `values` holds at least one finite number."""
    return any(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def write_png(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)
