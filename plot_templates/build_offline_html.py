"""Build plot_templates/offline.html: DVC's HTML page template with vega, vega-lite and vega-embed
inlined (from plot_templates/vendor/), so the page `dvc plots show` writes renders with no network.

    python plot_templates/build_offline_html.py           # rewrite offline.html
    python plot_templates/build_offline_html.py --check   # exit 1 if offline.html is out of date

DVC (dvc_render.html) reads the template and replaces `{plot_divs}` (required) with one
`<div><script>vegaEmbed(...)</script></div>` per plot, `{scripts}` with its CDN <script> tags and
`{refresh_tag}` with a refresh <meta> (empty for `dvc plots show`). This page has no `{scripts}`,
so the CDN tags are dropped, and loads the libraries before the plots' inline calls run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "offline.html"
VENDOR = HERE / "vendor"
# Dependency order: vega-lite needs the global `vega`, vega-embed both globals.
LIBRARIES = ("vega", "vega-lite", "vega-embed")
# DVC's placeholders: a library holding one would be rewritten by DVC's str.replace.
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>mcbits plots</title>
<!-- Built by plot_templates/build_offline_html.py from plot_templates/vendor/ (see its README):
     vega, vega-lite and vega-embed are inlined, so this page loads nothing from the network. -->
@LIBRARIES@
<style>
  body { font-family: sans-serif; }
  table { border-spacing: 15px; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def library(name: str) -> str:
    """One vendored build as an inline <script>, after checking it cannot break out of it."""
    code = (VENDOR / f"{name}.min.js").read_text(encoding="utf-8")
    lowered = code.lower()
    # '</script' would end the element early; '<!--' can switch the HTML parser's script state.
    for bad in ("</script", "<!--", *PLACEHOLDERS):
        if bad in lowered:
            raise ValueError(f"{name}.min.js contains {bad!r}: it cannot be inlined as is")
    return f"<script>\n{code.rstrip()}\n</script>"


def build() -> str:
    return PAGE.replace("@LIBRARIES@", "\n".join(library(name) for name in LIBRARIES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that offline.html is up to date")
    args = parser.parse_args(argv)
    page = build()
    if args.check:
        current = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.exists() else None
        if current != page:
            print(f"{TEMPLATE} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TEMPLATE.write_text(page, encoding="utf-8")
    print(f"{TEMPLATE}: {len(page.encode()):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
