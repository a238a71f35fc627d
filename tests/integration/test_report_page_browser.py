"""The report pages in a real browser: Debian's Chromium, headless (tests/browser.py).

What a unit test of the HTML cannot see: that Chromium lays the page out right to left with
the Arabic title, draws the SVG charts, never needs a horizontal scrollbar (at a desktop and at
a phone's width), runs no script, and prints it to A4 pages.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from services.archive.report_page import render_consultation, render_unit
from tests import browser
from tests.report_samples import consultation_report, unit_report


@pytest.fixture(scope="module")
def consultation_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    page = tmp_path_factory.mktemp("report") / "consultation.html"
    page.write_text(render_consultation(consultation_report()), encoding="utf-8")
    return page


@pytest.fixture(scope="module")
def unit_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    page = tmp_path_factory.mktemp("report") / "unit.html"
    page.write_text(render_unit(unit_report()), encoding="utf-8")
    return page


def test_chromium_builds_the_page_right_to_left_with_its_title_and_charts(
    consultation_page: Path,
) -> None:
    dom = browser.dump_dom(consultation_page)
    assert re.search(r'<html lang="ar" dir="rtl">', dom)
    h1 = re.search(r"<h1>(.*?)</h1>", dom, re.DOTALL)
    assert h1 is not None
    assert "مشروع نظام التوثيق" in h1.group(1)
    svgs = re.findall(r"<svg .*?</svg>", dom, re.DOTALL)
    assert len(svgs) == 6
    assert all(svg.count("<rect ") >= 3 for svg in svgs)  # bars, in every chart
    assert "أؤيد مع تعديلات" in dom


@pytest.mark.parametrize("width", [1280, 500])
def test_nothing_sticks_out_sideways_and_no_script_runs(
    consultation_page: Path, unit_page: Path, width: int
) -> None:
    for page in (consultation_page, unit_page):
        layout = browser.measure(page, width=width)
        assert layout["dir"] == "rtl"
        assert layout["lang"] == "ar"
        assert layout["scroll_width"] <= layout["inner_width"], layout
        assert layout["wide"] == [], layout["wide"]
        assert layout["scripts_ran"] is False  # the page's policy refuses scripts
    assert browser.measure(consultation_page)["svgs"] == 6
    assert browser.measure(unit_page)["svgs"] == 4


def test_the_screenshot_shows_the_page_with_its_charts_and_no_cut_edge(
    consultation_page: Path, tmp_path: Path
) -> None:
    png = browser.screenshot(consultation_page, tmp_path / "page.png", width=1280, height=2000)
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 500  # text (anti-aliased Arabic and Latin), charts, not a blank page
    accent = sum(n for n, rgb in colours if rgb == (0x0B, 0x6E, 0x4F))
    assert accent > 20_000  # the bars, in the charts' colour
    # the page is centred with a margin: the rightmost and leftmost columns are background only
    for x in (0, 1, image.width - 2, image.width - 1):
        column = {image.getpixel((x, y)) for y in range(image.height)}
        assert column == {(0xF2, 0xF4, 0xF5)}, (x, column)


def test_the_page_prints_to_a4_pages(consultation_page: Path, tmp_path: Path) -> None:
    data = browser.pdf(consultation_page, tmp_path / "page.pdf")
    assert data.startswith(b"%PDF-")
    pages = re.findall(rb"/Type\s*/Page[^s]", data)
    assert len(pages) >= 4  # the summary, then questions, campaigns and comments on new pages
    boxes = set(re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data))
    assert boxes
    for w, h in boxes:
        assert (round(float(w)), round(float(h))) == (595, 842)  # A4 in points
