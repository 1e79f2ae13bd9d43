"""Plots that tell the truth, offline: the plot data (long-form rates, savings with their N), the
PNG figures (coder by colour, rate by line style, savings from zero, a reason instead of a blank
figure), and `dvc plots show` with plot_templates/offline.html in a temporary git+DVC repository:
a page that loads nothing from the network and holds a vega-lite spec per plot. Where node is
installed, the page's own scripts are run and every spec rendered to SVG (no browser, no network).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, run_dvc, tool_env

from mcbits.results import figures as F
from mcbits.results import tables as T
from stages import figures as figures_stage

# --- plot data ------------------------------------------------------------------------------


def _record(coder: str, n: int, train: str, test: str, net: float, total: float) -> dict:
    return {"label": f"{coder}-{n}", "coder": coder, "num_particles": n, "train": train, "test": test,
            "iterative": False, "net_bpd": net, "total_bpd": total, "ideal_bpd": net}


def _records(datasets: list[str], particles: list[int], cis: bool = True) -> list[dict]:
    """BB-ELBO/BB-IS(N) on every pair (rates falling with N, worse across data sets) and, in
    distribution on the first data set, BB-CIS(N)."""
    out = []
    for i, train in enumerate(datasets):
        for j, test in enumerate(datasets):
            for n in particles:
                net = 0.25 + 0.05 * (i != j) - 0.002 * n
                out.append(_record(T.is_coder(n)[0], n, train, test, net, net + 0.001 * n))
    if cis:
        out += [_record("CISBitsBackCoder", n, datasets[0], datasets[0], 0.251 - 0.002 * n, 0.26)
                for n in particles]
    return out


def test_rates_vs_particles_is_long_form_without_empty_cells():
    records = [r for r in _records(["mnist"], [1, 5, 50])
               if not (r["coder"] == "CISBitsBackCoder" and r["num_particles"] == 50)]  # a missing run
    rates = T.rates_vs_particles(records, "mnist", [1, 5, 50])
    assert list(rates.columns) == ["num_particles", "coder", "rate", "bits_per_dim"]
    assert not rates.isna().any().any()
    assert set(rates["coder"]) == {"BB-IS", "BB-CIS"} and set(rates["rate"]) == {"net", "total"}
    assert len(rates) == 2 * 3 + 2 * 2  # BB-IS at every N, BB-CIS without N = 50
    row = rates[(rates.coder == "BB-IS") & (rates.rate == "total") & (rates.num_particles == 50)]
    assert row["bits_per_dim"].tolist() == [pytest.approx(0.25 - 0.1 + 0.05)]
    bb_elbo = rates[(rates.coder == "BB-IS") & (rates.rate == "net") & (rates.num_particles == 1)]
    assert bb_elbo["bits_per_dim"].tolist() == [pytest.approx(0.248)]  # BB-IS at N = 1 is BB-ELBO
    assert T.rates_vs_particles([], "mnist", [1, 5]).empty


def test_savings_frame_takes_savings_from_the_table_and_names_their_n():
    datasets = ["emnist-mnist", "emnist-letters"]
    table, _ = T.distribution_table(_records(datasets, [1, 5, 50]), datasets, [1, 5, 50], {})
    savings = T.savings_frame(table)
    assert list(savings.columns) == T.SAVINGS_COLUMNS
    assert len(savings) == 4 and list(savings["setting"]) == list(table.columns)
    assert savings["savings_pct"].tolist() == pytest.approx(table.loc["Savings (%)"].tolist())
    assert savings["num_particles"].tolist() == [50] * 4 and set(savings["baseline"]) == {"BB-ELBO"}
    first = savings.iloc[0]
    assert first["label"] == f"{first['savings_pct']:.1f}% at N = 50"
    assert "num_particles" in savings.to_csv(index=False) and ",50," in savings.to_csv(index=False)


def test_one_data_set_still_has_in_distribution_savings():
    table, _ = T.distribution_table(_records(["mnist"], [1, 5]), ["mnist"], [1, 5], {})
    savings = T.savings_frame(table)
    assert len(savings) == 1 and savings["savings_pct"].notna().all()
    assert savings["label"].tolist() == [f"{savings['savings_pct'][0]:.1f}% at N = 5"]


def test_a_grid_with_one_n_gets_a_row_that_says_why():
    table, _ = T.distribution_table(_records(["mnist"], [1]), ["mnist"], [1], {})
    savings = T.savings_frame(table)
    assert len(savings) == 1 and savings["savings_pct"].isna().all()
    assert savings["setting"].tolist() == ["(none)"]
    assert savings["label"][0].startswith("no saving to show: grid.particles has one N")
    missing, _ = T.distribution_table([], ["mnist"], [1, 5], {})  # no runs yet
    assert "no setting has both" in T.savings_frame(missing)["label"][0]


def test_savings_over_a_baseline_other_than_bb_elbo_say_so():
    table, _ = T.distribution_table(_records(["mnist"], [5, 50]), ["mnist"], [5, 50], {})
    savings = T.savings_frame(table)
    assert savings["baseline"].tolist() == ["BB-IS (5)"]
    assert savings["label"][0].endswith("at N = 50 over BB-IS (5)")


# --- PNG figures ----------------------------------------------------------------------------


def test_rate_figure_colours_coders_and_dashes_total_rates():
    rates = T.rates_vs_particles(_records(["mnist"], [1, 5, 50]), "mnist", [1, 5, 50])
    fig = F.rate_vs_particles_figure(rates, "t")
    try:
        lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
        assert set(lines) == {"BB-IS net", "BB-IS total", "BB-CIS net", "BB-CIS total"}
        for name, line in lines.items():
            coder, kind = name.split()
            assert line.get_color() == F.CODER_COLOURS[coder]
            assert line.get_linestyle() == F.RATE_STYLES[kind]
        assert lines["BB-IS net"].get_color() != lines["BB-CIS net"].get_color()
        assert fig.axes[0].get_xscale() == "log"
    finally:
        F._pyplot().close(fig)


def test_savings_figure_starts_at_zero_and_names_n():
    datasets = ["emnist-mnist", "emnist-letters"]
    table, _ = T.distribution_table(_records(datasets, [1, 5, 50]), datasets, [1, 5, 50], {})
    fig = F.savings_figure(T.savings_frame(table))
    try:
        ax = fig.axes[0]
        assert ax.get_xlim()[0] == 0.0
        assert "BB-IS (50)" in fig._suptitle.get_text()
        texts = [t.get_text() for t in ax.texts]
        assert len(texts) == 4 and all(t.endswith("at N = 50") for t in texts)
    finally:
        F._pyplot().close(fig)


def _write_plot_data(folder: Path, datasets: list[str], particles: list[int]) -> None:
    records = _records(datasets, particles)
    table, _ = T.distribution_table(records, datasets, particles, {})
    folder.mkdir(parents=True, exist_ok=True)
    T.rates_vs_particles(records, datasets[0], particles).to_csv(folder / "rate_vs_particles.csv",
                                                                 index=False)
    T.savings_frame(table).to_csv(folder / "savings.csv", index=False)


@pytest.mark.parametrize(("particles", "shows"), [([1, 5, 50], "bars"), ([1], "reason")])
def test_one_data_set_grid_still_draws_the_savings_figure(tmp_path, particles, shows):
    _write_plot_data(tmp_path / "plots", ["mnist"], particles)
    pngs = figures_stage.render(tmp_path / "plots", tmp_path / "no_history", "mnist")
    assert sorted(pngs) == ["rate_vs_particles.png", "savings.png"]  # never a deleted figure
    assert all(data.startswith(b"\x89PNG") for data in pngs.values())
    assert figures_stage.render(tmp_path / "plots", tmp_path / "no_history", "mnist") == pngs
    fig = F.savings_figure(pd.read_csv(tmp_path / "plots" / "savings.csv"))
    try:
        texts = [t.get_text() for t in fig.axes[0].texts]
        if shows == "bars":
            assert len(fig.axes[0].patches) == 1 and texts[0].endswith("at N = 50")
        else:
            assert not fig.axes[0].patches and "grid.particles has one N" in " ".join(texts)
    finally:
        F._pyplot().close(fig)


# --- the offline HTML -----------------------------------------------------------------------

TEMPLATES = REPO_ROOT / "plot_templates"
# Every URL-looking string the page holds outside license comments, and why none is loaded when
# the page opens: vega-lite's "$schema" ids and vega's own are only parsed for their version;
# vega-embed's editor URL is used only when one clicks "Open in Vega Editor" (our templates hide
# it); the W3C ones are XML namespaces; the issue link is text of a warning; vega's bare
# "http://" / "https://" are prefixes its loader checks against data URLs (ours are inline).
ALLOWED_URLS = (
    "https://vega.github.io/schema/",
    "https://vega.github.io/editor/",
    "http://www.w3.org/",
    "https://github.com/vega/vega-lite/issues/2415",
)
LICENSE_COMMENT = re.compile(r"/\*!.*?\*/", re.S)


def _network_loads(html: str) -> list[str]:
    """What in `html` would load from the network when the page opens (empty: nothing)."""
    found = []
    lowered = html.lower()
    for pattern in (r"""\bsrc\s*=\s*["']?\s*(https?:)?//""", r"""\bhref\s*=\s*["']?\s*(https?:)?//""",
                    r"<link\b", r"<script[^>]*\bsrc\s*=", r"""\bimport\s*\(\s*["']https?:""",
                    r"""\bfrom\s*["']https?:""", r"""\bfetch\s*\(\s*["']https?:""",
                    r"""url\(\s*["']?https?:""", r"cdn\.jsdelivr"):
        found += [m.group(0) for m in re.finditer(pattern, lowered)]
    for match in re.finditer(r"https?://[^\s\"'<>)]*", LICENSE_COMMENT.sub("", html)):
        url = match.group(0)
        if url not in ("http://", "https://") and not url.startswith(ALLOWED_URLS):
            found.append(url)
    return found


def _specs(html: str) -> list[dict]:
    """The vega-lite spec of each plot div DVC wrote (`var spec = {...};`)."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(html, m.end())[0] for m in re.finditer(r"var spec = ", html)]


def test_offline_template_is_built_from_the_vendored_libraries():
    build = subprocess.run([sys.executable, str(TEMPLATES / "build_offline_html.py"), "--check"],
                           env=tool_env(), capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    page = (TEMPLATES / "offline.html").read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN tags have nowhere to go
    for name in ("vega", "vega-lite", "vega-embed"):
        code = (TEMPLATES / "vendor" / f"{name}.min.js").read_text(encoding="utf-8")
        assert code.startswith(f"/*! {name} ") and "Redistribution and use" in code  # license header
        assert not re.search(r"^//# sourceMappingURL", code, re.M)  # no map for devtools to fetch
    assert _network_loads(page) == []


def test_the_network_check_sees_a_cdn_page():
    cdn = '<script src="https://cdn.jsdelivr.net/npm/vega@5.20.2"></script>'
    assert _network_loads(cdn) and _network_loads("fetch('https://example.org/x.json')")
    assert _network_loads('/*! https://ok.example */ x="https://bad.example/a"') == ["https://bad.example/a"]


NODE_RENDER = r"""
// Run the page's scripts in order in a bare context (no DOM, no network), capture the spec each
// plot div hands to vegaEmbed, compile it with the page's vega-lite and render it with its vega.
const fs = require("fs");
const vm = require("vm");
const html = fs.readFileSync(process.argv[2], "utf8");
const scripts = [...html.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
const specs = [];
const capture = (el, spec) => { specs.push(spec); };
// Browser globals the libraries use, but no fetch or XMLHttpRequest: a load would throw.
const box = vm.createContext({console, setTimeout, clearTimeout, setInterval, clearInterval,
  queueMicrotask, structuredClone, URL, URLSearchParams, TextEncoder, TextDecoder});
for (const code of scripts) {
  vm.runInContext(code, box);
  if (box.vegaEmbed && box.vegaEmbed !== capture) { box.vegaEmbed = capture; }
}
(async () => {
  const out = {vega: box.vega.version, vegaLite: box.vegaLite.version, plots: []};
  for (const spec of specs) {
    const view = new box.vega.View(box.vega.parse(box.vegaLite.compile(spec).spec), {renderer: "none"});
    out.plots.push({title: spec.title && spec.title.text, svg: await view.toSVG()});
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
"""


def _node_render(tmp_path: Path, page: Path) -> dict:
    script = tmp_path / "render.js"
    script.write_text(NODE_RENDER)
    done = subprocess.run(["node", str(script), str(page)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _plots_repo(tmp_path: Path, datasets: list[str], particles: list[int]) -> Path:
    """A git+DVC repository with this project's plot templates, dvc.yaml's `plots:` block only (no
    stages) and generated plot data (metrics/plots CSVs)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(TEMPLATES, repo / "plot_templates", ignore=shutil.ignore_patterns("__pycache__"))
    plots = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["plots"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False, allow_unicode=True))
    _write_plot_data(repo / "metrics" / "plots", datasets, particles)
    env = tool_env()
    subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
    run_dvc(repo, "init", "-q", env=env)
    run_dvc(repo, "config", "core.analytics", "false", env=env)
    return repo


@pytest.mark.dvc
def test_dvc_plots_show_writes_an_offline_page(tmp_path):
    repo = _plots_repo(tmp_path, ["emnist-mnist", "emnist-letters"], [1, 5, 50])
    env = tool_env()
    run_dvc(repo, "plots", "show", "--html-template", "plot_templates/offline.html", "-o", "shown", env=env)
    page = repo / "shown" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert _network_loads(html) == []
    specs = {spec["title"]["text"]: spec for spec in _specs(html)}
    titles = {p for entry in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"] for p in entry}
    assert len(specs) == len(titles) >= 2  # one spec per plot: rates, savings (and any other)
    rates = next(s for t, s in specs.items() if "net" in t and "total" in t)
    assert rates["encoding"]["color"]["field"] == "coder"
    assert rates["encoding"]["strokeDash"]["field"] == "rate"
    assert rates["encoding"]["strokeDash"]["scale"]["domain"] == ["net", "total"]
    assert rates["encoding"]["shape"]["field"] == "rev"  # revisions apart in `dvc plots diff`
    assert {(v["coder"], v["rate"]) for v in rates["data"]["values"]} == {
        (c, r) for c in ("BB-IS", "BB-CIS") for r in ("net", "total")}
    savings = next(s for t, s in specs.items() if "saving" in t.lower())
    bars = savings["layer"][0]["encoding"]["x"]
    assert bars["scale"]["zero"] is True and bars["scale"]["domainMin"] == 0
    assert [v["label"] for v in savings["data"]["values"]][0].endswith("at N = 50")

    # The same page by default once the template is configured (path relative to .dvc/).
    run_dvc(repo, "config", "plots.html_template", "../plot_templates/offline.html", env=env)
    run_dvc(repo, "plots", "show", "-o", "configured", env=env)
    assert (repo / "configured" / "index.html").read_text(encoding="utf-8") == html.replace(
        str(repo / "shown"), str(repo / "configured"))

    if shutil.which("node") is None:
        pytest.skip("node not installed: the page's specs were not rendered")
    rendered = _node_render(tmp_path, page)
    assert rendered["vega"].startswith("5.") and rendered["vegaLite"].startswith("5.")
    svgs = {p["title"]: p["svg"] for p in rendered["plots"]}
    assert set(svgs) == set(specs) and all("<path" in svg for svg in svgs.values())
    rate_svg = next(svg for t, svg in svgs.items() if "net" in t and "total" in t)
    assert 'stroke="#1f77b4"' in rate_svg and 'stroke="#ff7f0e"' in rate_svg  # a colour per coder
    assert 'stroke-dasharray="6,4"' in rate_svg  # total rates dashed
    savings_svg = next(svg for t, svg in svgs.items() if "saving" in (t or "").lower())
    assert "at N = 50" in savings_svg


@pytest.mark.dvc
def test_one_n_grid_savings_plot_says_why_and_diff_tells_revisions_apart(tmp_path):
    repo = _plots_repo(tmp_path, ["mnist"], [1])
    env = tool_env()
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "plots"], cwd=repo, env=env, check=True)
    _write_plot_data(repo / "metrics" / "plots", ["mnist"], [1, 5])  # the workspace moves on
    run_dvc(repo, "plots", "diff", "HEAD", "--html-template", "plot_templates/offline.html", "-o", "diff",
            env=env)
    page = repo / "diff" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert _network_loads(html) == []
    specs = _specs(html)
    rates = next(s for s in specs if "strokeDash" in s.get("encoding", {}))
    assert {v["rev"] for v in rates["data"]["values"]} == {"HEAD", "workspace"}
    savings = next(s for s in specs if "layer" in s)
    labels = {(v["rev"], v["label"]) for v in savings["data"]["values"]}
    assert any(rev == "HEAD" and label.startswith("no saving to show") for rev, label in labels)
    assert any(rev == "workspace" and label.endswith("at N = 5") for rev, label in labels)
    if shutil.which("node") is None:
        pytest.skip("node not installed: the page's specs were not rendered")
    svgs = [p["svg"] for p in _node_render(tmp_path, page)["plots"]]
    assert any("no saving to show" in svg and "at N = 5" in svg for svg in svgs)
