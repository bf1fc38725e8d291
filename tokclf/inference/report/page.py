"""The report's index.html, rendered by jinja2 from templates/report.html.j2 (package data), with
autoescaping on: labels, words and options are text in the page, never markup."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

PAGE_SIZE = 25  # sentences drawn at a time: a long split's page stays quick to draw and to scroll
_ENV = Environment(loader=PackageLoader("tokclf.inference.report", "templates"),
                   autoescape=select_autoescape(["html", "j2"], default=True), keep_trailing_newline=True)
# What makes a JSON text unsafe inside <script>: "</script>" or "<!--" would end or change the element.
# JSON keeps meaning with these characters as \u escapes (the same as Django's json_script).
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(value) -> str:
    """value as JSON that can sit inside a <script type="application/json"> element as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_SCRIPT_ESCAPES)


def render_page(path: Path, context: dict, data: dict) -> Path:
    """Write the page at path; `data` (the sentences and colours) goes into the page's JSON blob."""
    template = _ENV.get_template("report.html.j2")
    # Markup: the blob is already safe for a script element; HTML-escaping it would change the JSON.
    html = template.render(**context, data_json=Markup(script_json(data)), page_size=PAGE_SIZE)
    path.write_text(html, encoding="utf-8")
    return path
