"""PLACEHOLDER (branch h/creport) until the report page lands (branch h/cpage replaces this file).

Only what the report API and `sada report --format html` need to run and be tested: a valid,
escaped, right-to-left HTML document naming the report. The real page (charts, bidi, print
CSS) is the other branch's.
"""

from __future__ import annotations

from html import escape

from services.archive.report_model import ConsultationReport, UnitReport


def render_consultation(report: ConsultationReport) -> str:
    """Return the consultation report as an HTML page."""
    info = report.consultation
    return (
        '<!doctype html><html lang="ar" dir="rtl"><head><meta charset="utf-8">'
        f"<title>{escape(info.title_ar)}</title></head><body>"
        f'<h1>{escape(info.title_ar)}</h1><p dir="ltr">{escape(info.title_en)}</p>'
        f"<p>{report.total}</p></body></html>"
    )


def render_unit(report: UnitReport) -> str:
    """Return the unit report as an HTML page."""
    return (
        '<!doctype html><html lang="ar" dir="rtl"><head><meta charset="utf-8">'
        f"<title>{escape(report.name_ar)}</title></head><body>"
        f'<h1>{escape(report.name_ar)}</h1><p dir="ltr">{escape(report.name_en)}</p>'
        f"<p>{report.total}</p></body></html>"
    )
