"""Headless Chromium for tests: render a page as a reader's browser does, and look at it.

Debian's `chromium` (installed by deploy/local/chromium.sh, which `make test` runs first):

- `dump_dom(page)`: the DOM after load (`--dump-dom`), as HTML text;
- `screenshot(page, png)`: a PNG of the viewport (`--screenshot --window-size`);
- `pdf(page, out)`: the page printed to PDF (`--print-to-pdf`), as "Save as PDF" does;
- `measure(page)`: the page's layout as the browser computed it (viewport and document sizes,
  and the elements that stick out sideways), read by a test-only probe script.

The report pages forbid scripts (their Content-Security-Policy). The probe goes into a copy of
the page, placed before the policy's `<meta>`: a policy applies from where it is declared, so the
probe registers its `load` listener, while any script after the policy is still refused; the
probe never sees the pages people get. Each run has its own profile directory and its own
process group, killed on timeout, so runs in parallel never share or leak a browser.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
HINT: Final = "run deploy/local/chromium.sh (make test and make integration do) to install it"
FLAGS: Final = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--mute-audio",
)
PROBE_ID: Final = "sada-test-probe"
_PROBE: Final = (
    "<script>addEventListener('load', function () {"
    "  var d = document.documentElement, w = innerWidth, wide = [];"
    "  document.querySelectorAll('body *').forEach(function (e) {"
    "    var r = e.getBoundingClientRect();"
    "    if (r.width && (r.right > w + 1 || r.left < -1)) {"
    "      wide.push(e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined"
    "        ? '.' + e.className : '') + ' ' + Math.round(r.left) + '..' + Math.round(r.right));"
    "    }"
    "  });"
    "  var p = document.createElement('pre'); p.id = '" + PROBE_ID + "';"
    "  p.textContent = JSON.stringify({inner_width: w, scroll_width: d.scrollWidth,"
    "    scroll_height: d.scrollHeight, dir: d.dir, lang: d.lang,"
    "    svgs: document.querySelectorAll('svg').length, wide: wide.slice(0, 20),"
    "    scripts_ran: window.__sada_injected_after_csp === true});"
    "  document.body.appendChild(p);"
    "});</script>"
)
_CSP_CANARY: Final = "<script>window.__sada_injected_after_csp = true;</script>"


def chromium() -> str:
    """Return the Chromium binary; fail (never skip) with how to install it when missing."""
    found = os.environ.get("SADA_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise AssertionError(f"Debian's chromium is not installed: {HINT}")
    return found


def _url(page: Path | str) -> str:
    return page if isinstance(page, str) and "://" in page else Path(page).resolve().as_uri()


def run(args: Sequence[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run Chromium headless with `args`; kill its whole process group after `timeout` s."""
    with tempfile.TemporaryDirectory(prefix="sada-chromium-") as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"chromium did not finish within {timeout} s: {cmd}") from None
        finally:
            if proc.poll() is None:  # pragma: no cover - communicate() returned or we killed it
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode != 0:
            raise AssertionError(f"chromium exited {proc.returncode}: {err[-2000:]}")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def dump_dom(
    page: Path | str, *, width: int = 1280, height: int = 2000, timeout: float = 60.0
) -> str:
    """Return the DOM of `page` (a file or URL) after it loaded, serialised as HTML."""
    return run(
        [f"--window-size={width},{height}", "--virtual-time-budget=3000", "--dump-dom", _url(page)],
        timeout=timeout,
    ).stdout


def screenshot(
    page: Path | str, png: Path, *, width: int = 1280, height: int = 2000, timeout: float = 60.0
) -> Path:
    """Save a `width`×`height` screenshot of `page` to `png` and return its path."""
    png = png.resolve()
    run(
        [
            f"--window-size={width},{height}",
            "--virtual-time-budget=3000",
            "--run-all-compositor-stages-before-draw",
            f"--screenshot={png}",
            _url(page),
        ],
        timeout=timeout,
    )
    if not png.is_file():
        raise AssertionError(f"chromium wrote no screenshot to {png}")
    return png


def pdf(page: Path | str, out: Path, *, timeout: float = 60.0) -> bytes:
    """Print `page` to a PDF as a reader's "Save as PDF" does (print CSS, `@page` size)."""
    out = out.resolve()
    run(
        [
            "--virtual-time-budget=3000",
            "--no-pdf-header-footer",
            f"--print-to-pdf={out}",
            _url(page),
        ],
        timeout=timeout,
    )
    if not out.is_file():
        raise AssertionError(f"chromium wrote no PDF to {out}")
    return out.read_bytes()


def with_probe(page_html: str) -> str:
    """Return the page with the layout probe first in `<head>` and a canary script at the end.

    The canary sets a flag if it runs: on a page whose policy forbids scripts, it must not.
    """
    probed, n = re.subn(r"<head>", "<head>" + _PROBE, page_html, count=1)
    if n != 1:
        raise AssertionError("the page has no <head>")
    return probed.replace("</body>", _CSP_CANARY + "</body>", 1)


def measure(page: Path, *, width: int = 1280, height: int = 2000) -> dict[str, Any]:
    """Return the layout Chromium computed for `page` at `width` (see `with_probe`)."""
    with tempfile.TemporaryDirectory(prefix="sada-probe-") as tmp:
        probed = Path(tmp) / page.name
        probed.write_text(with_probe(page.read_text(encoding="utf-8")), encoding="utf-8")
        dom = dump_dom(probed, width=width, height=height)
    found = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', dom, re.DOTALL)
    if not found:
        raise AssertionError("the layout probe did not run (no load event?)")
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def page_height(page: Path, *, width: int, cap: int = 16_000) -> int:
    """Return the height of `page` laid out at `width` (for a whole-page screenshot)."""
    return min(int(measure(page, width=width)["scroll_height"]), cap)
