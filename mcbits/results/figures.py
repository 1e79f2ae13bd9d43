"""The result figures as PNG files (matplotlib, Agg backend: no display needed).

Each function takes the plot data the aggregate stage writes (pandas frames) and writes one PNG
whose bytes depend only on that data and the matplotlib build (no timestamp; the file's Software
field is left out).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mcbits.atomic import write_bytes_atomic

DPI = 120
# The same encodings as plot_templates/rate_vs_particles.json: colour is the coder, line style the
# rate, so the legend's two keys read the same in the PNG and in `dvc plots show`.
CODER_COLOURS = {"BB-IS": "tab:blue", "BB-CIS": "tab:orange"}
RATE_STYLES = {"net": "-", "total": "--"}
SAVINGS_COLOUR = "tab:green"


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


def _say(ax, text: str) -> None:
    """Put `text` where the plot would be: a figure that says why it is empty, never a blank one."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 60)), ha="center", va="center",
            transform=ax.transAxes, color="dimgrey")


def rate_vs_particles_figure(rates: pd.DataFrame, title: str):
    """The figure of rate_vs_particles_png (returned open, for tests to inspect its lines)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    data = rates.dropna(subset=["bits_per_dim"]) if "bits_per_dim" in rates else rates.iloc[0:0]
    ax.set_title(title)
    if data.empty:
        _say(ax, "no coding runs of BB-IS or BB-CIS in distribution yet")
        return fig
    for coder, colour in CODER_COLOURS.items():
        for kind, style in RATE_STYLES.items():
            line = data[(data["coder"] == coder) & (data["rate"] == kind)].sort_values("num_particles")
            if not line.empty:
                ax.plot(line["num_particles"].astype(int), line["bits_per_dim"], style, color=colour,
                        marker="o", label=f"{coder} {kind}")
    x = sorted({int(n) for n in data["num_particles"]})
    ax.set_xscale("log")
    ax.set_xticks(x, [str(n) for n in x])
    ax.minorticks_off()
    ax.set_xlabel("particles N (log scale; BB-IS at N = 1 is BB-ELBO)")
    ax.set_ylabel("bits/dim")
    ax.grid(True, alpha=0.3)
    ax.legend(title="colour: coder; solid: net, dashed: total", fontsize="small", title_fontsize="small")
    fig.tight_layout()
    return fig


def rate_vs_particles_png(rates: pd.DataFrame, title: str) -> bytes:
    """Net (solid) and total (dashed) bits/dim of BB-IS (blue) and BB-CIS (orange) against N,
    log-scale N, from the long-form plot data (num_particles, coder, rate, bits_per_dim)."""
    return _png(rate_vs_particles_figure(rates, title))


def savings_title(savings: pd.DataFrame) -> str:
    """'Table 1: savings of BB-IS (50) over BB-ELBO' when every bar is at one N (else the N is on
    each bar)."""
    data = savings.dropna(subset=["savings_pct"])
    ns = {int(n) for n in data["num_particles"].dropna()} if "num_particles" in data else set()
    baselines = set(data["baseline"].dropna()) if "baseline" in data else set()
    baseline = baselines.pop() if len(baselines) == 1 else "BB-ELBO"
    if len(ns) == 1 and len(data["num_particles"].dropna()) == len(data):
        return f"Table 1: net-rate savings of BB-IS ({ns.pop()}) over {baseline}"
    return f"Table 1: net-rate savings of the best BB-IS (N) over {baseline}"


def savings_figure(savings: pd.DataFrame, title: str | None = None):
    """The figure of savings_png (returned open, for tests to inspect its axes)."""
    plt = _pyplot()
    data = savings.dropna(subset=["savings_pct"])
    fig, ax = plt.subplots(figsize=(6.0, 0.6 * max(len(data), 1) + 1.4))
    # over the whole figure: the long setting names shift the axes right, and a long axes title
    # centred on them would run off the figure
    fig.suptitle(title or savings_title(savings))
    if data.empty:
        # savings_frame's explaining row, or a generic reason for a frame without one
        notes = [str(v) for v in savings.get("label", pd.Series(dtype=str)).dropna()]
        _say(ax, notes[0] if notes else "no saving to show: no BB-ELBO and BB-IS(N) runs to compare")
        return fig
    y = list(range(len(data)))[::-1]
    values = [float(v) for v in data["savings_pct"]]
    bars = ax.barh(y, values, color=SAVINGS_COLOUR)
    ax.set_yticks(y, list(data["setting"]))
    labels = list(data["label"]) if "label" in data else [f"{v:.1f}%" for v in values]
    ax.bar_label(bars, labels=labels, padding=3)
    # Bars start at zero (a saving is a length); room on the right for the labels.
    ax.set_xlim(min(0.0, *values) * 1.1, max(1.0, *values) * 1.6)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("net-rate saving (%)")
    fig.tight_layout()
    return fig


def savings_png(savings: pd.DataFrame, title: str | None = None) -> bytes:
    """Table 1's savings (%) per setting as horizontal bars from zero, each labelled with its value
    and N (savings_frame's label); the title names the N when all bars share it. Without any
    saving, the figure says why (the frame's label) instead of showing empty axes."""
    return _png(savings_figure(savings, title))


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
