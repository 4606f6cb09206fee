"""Evidently's standalone HTML at about a third of its size, still one self-contained file.

Evidently 0.7 writes its whole 3.5 MB JavaScript bundle (React and Plotly) into every report; a daily
report was 4.2 MB of which 3.5 MB were that bundle. A sibling `.js` file (Evidently's old "folder" mode) or
a CDN would break where the report is opened: MLflow's artifact view loads the HTML from a blob: URL,
where no relative path resolves, and a CDN needs the network. So the bundle stays inline, gzip-compressed
and base64-encoded (1.4 MB), and the page unpacks it with the browser's own `DecompressionStream` (Chrome
80, Firefox 113, Safari 16.4) before drawing. See docs/decisions/drift-report.md.
"""

from __future__ import annotations

import base64
import gzip
from functools import cache
from pathlib import Path

# Queues the page's drawDashboard call until the unpacked bundle defines the real one (it ends with
# `window.drawDashboard=...`), then replays it.
_LOADER = """<script>
(function () {
  var queued = [];
  window.drawDashboard = function () { queued.push(arguments); };
  var packed = "%s";
  var bytes = Uint8Array.from(atob(packed), function (c) { return c.charCodeAt(0); });
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  new Response(stream).text().then(function (code) {
    var script = document.createElement("script");
    script.textContent = code;
    document.head.appendChild(script);
    queued.forEach(function (args) { window.drawDashboard.apply(window, args); });
  });
})();
</script>"""


def evidently_bundle_path() -> Path:
    from evidently.legacy.utils.dashboard import STATIC_PATH

    return Path(STATIC_PATH) / "index.js"


@cache
def _packed_bundle() -> tuple[str, str]:
    """(the inline script block Evidently writes, the loader that replaces it)."""
    code = evidently_bundle_path().read_text(encoding="utf-8")
    packed = base64.b64encode(gzip.compress(code.encode("utf-8"), compresslevel=9, mtime=0)).decode()
    return f"<script>{code}</script>", _LOADER % packed


def compact_html(html: str) -> str:
    """`html` (Evidently's standalone page) with its JS bundle inlined compressed; unchanged when the page
    does not hold the bundle as this Evidently version writes it."""
    inline, loader = _packed_bundle()
    return html.replace(inline, loader, 1)
