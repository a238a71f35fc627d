"""The report page's HTML: Arabic first, bidi-isolated, escaped, self-contained, printable."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from services.archive import report_charts as charts
from services.archive.report_model import (
    Comment,
    ConsultationInfo,
    ConsultationReport,
    Count,
    DayCount,
)
from services.archive.report_page import comment_items, render_consultation, render_unit
from tests.report_samples import REF, consultation_report, unit_report

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def _page(**changes: object) -> str:
    return render_consultation(consultation_report().model_copy(update=changes))


def test_the_page_is_arabic_first_and_right_to_left_with_english_alongside() -> None:
    page = render_consultation(consultation_report())
    assert '<html lang="ar" dir="rtl">' in page
    assert "مشروع نظام التوثيق" in page
    assert '<span class="en" lang="en" dir="ltr">Draft Notarization Law</span>' in page
    assert '<span lang="ar">إجابات الاستبانة</span>' in page  # every heading in both languages
    assert "Questionnaire answers" in page


def test_submitter_text_is_escaped_wherever_it_appears() -> None:
    base = consultation_report()
    comment = base.comments[0].model_copy(update={"text": HOSTILE, "reference": HOSTILE})
    campaign = base.campaigns[0].model_copy(update={"representative": HOSTILE})
    question = base.questions[3]
    answer = question.free_text[0].model_copy(update={"text": HOSTILE})
    page = _page(
        comments=(comment,),
        campaigns=(campaign,),
        questions=(question.model_copy(update={"free_text": (answer,)}),),
    )
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page or (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    )


def test_a_hostile_project_title_and_option_label_are_escaped_too() -> None:
    base = consultation_report()
    info = base.consultation.model_copy(update={"title_ar": HOSTILE, "title_en": HOSTILE})
    option = base.questions[0].options[0].model_copy(update={"label_ar": HOSTILE})
    question = base.questions[0].model_copy(update={"options": (option,)})
    page = _page(consultation=info, questions=(question,))
    assert "<script" not in page
    assert "<img" not in page


def test_references_refs_and_user_text_are_isolated_from_the_text_around_them() -> None:
    page = render_consultation(consultation_report())
    assert f"<bdi>{REF}</bdi>" in page
    assert '<bdi class="ref">SADA-2026-030000</bdi>' in page  # a comment's reference
    assert "<td><bdi>SADA-2026-030000</bdi></td>" in page  # a campaign's first reference
    texts = re.findall(r'<p dir="auto">([^<]*)</p>', page)
    assert "أقترح أن تنص المادة 12 على مهلة لا تتجاوز 30 يومًا لإتمام التوثيق الإلكتروني." in texts
    assert any(t.startswith("The definition of") for t in texts)
    assert "<bdi>2026-03-01 00:37</bdi>" in page  # times, in Riyadh, kept in reading order


def test_charts_are_inline_svg_with_one_bar_per_option_and_a_column_per_day() -> None:
    report = consultation_report()
    page = render_consultation(report)
    svgs = re.findall(r"<svg .*?</svg>", page, re.DOTALL)
    # the timeline, kind and channel, and the three choice/scale questions
    assert len(svgs) == 6
    timeline = svgs[0]
    assert 'class="chart timeline"' in timeline
    assert timeline.count("<g><title>") == len(report.per_day)
    single = next(s for s in svgs if "Overall, what is your position" in s)
    assert single.count('<g class="bar">') == 4
    assert '<text x="760" y="15" direction="rtl" text-anchor="start" class="ar">أؤيد</text>' in (
        single
    )
    assert "1,512 · 57%" in single
    assert "Support with changes" in single


def test_the_closing_day_is_marked_on_the_timeline() -> None:
    page = render_consultation(consultation_report())
    assert "closes · يُغلق" in page


def test_late_and_unregistered_counts_are_visible_and_late_comments_marked() -> None:
    page = _page(late=57, unregistered=17)
    assert "<b>57</b><small>" in page
    assert "<b>17</b><small>" in page
    assert "بعد الإغلاق" in page
    assert "late, after closing" in page
    assert "بمرجع غير مسجل" in page
    assert "unregistered ref" in page
    assert page.count('<li class="late">') == 3  # the sample's comments after the close


def test_an_unregistered_project_says_so() -> None:
    info = ConsultationInfo(ref="MOJ-X-1", title_ar="MOJ-X-1", title_en="MOJ-X-1", registered=False)
    page = _page(consultation=info)
    assert "غير مسجل في سجل المشاريع" in page
    assert "Consultation window" not in page


def test_campaigns_show_size_first_reference_and_representative_text() -> None:
    page = render_consultation(consultation_report())
    assert "<td><b>1,406</b> <small><bdi>29%</bdi></small></td>" in page
    assert "حملة ×1,406" in page  # the representative comment carries its campaign's size


def test_a_text_question_lists_its_answers_and_says_how_many_there_are() -> None:
    page = render_consultation(consultation_report())
    assert '<bdi class="ref">SADA-2026-030105</bdi><p dir="auto">Consider a transition' in page
    assert "912" in page
    assert "Text answers" in page


def test_a_scale_question_shows_its_mean() -> None:
    page = render_consultation(consultation_report())
    assert "<b>3.7</b>" in page


def test_print_css_lays_the_page_out_on_a4_with_sections_on_new_pages() -> None:
    page = render_consultation(consultation_report())
    assert "@page { size: A4;" in page
    assert "@media print" in page
    assert "section.page { break-before: page; }" in page
    assert "figure { margin: 14px 0 18px; break-inside: avoid; }" in page
    assert page.count('<section class="page">') == 3


def test_the_page_is_self_contained_no_script_nor_anything_to_fetch() -> None:
    page = render_consultation(consultation_report())
    assert "<script" not in page
    assert "<link" not in page
    assert " src=" not in page
    assert "url(" not in page
    assert "@import" not in page
    assert "default-src 'none'" in page  # and the browser is told to refuse any


def test_unknown_channels_and_kinds_are_shown_by_their_id() -> None:
    comment = Comment(
        reference="SADA-1",
        submitted_at=datetime(2026, 3, 2, tzinfo=UTC),
        kind="petition",
        channel="fax",
        text="x",
    )
    items = comment_items([comment], {}, {})
    assert "· petition · fax" in items
    page = _page(by_channel=(Count(key="fax", count=3),))
    assert ">fax</text>" in page


def test_an_empty_report_renders_with_no_data_notes() -> None:
    report = ConsultationReport(
        consultation=ConsultationInfo(ref="R-1", title_ar="ع", title_en="E"),
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        total=0,
        late=0,
        unregistered=0,
    )
    page = render_consultation(report)
    assert "<svg" not in page
    assert "no data" in page
    assert "No comments" in page


def test_the_unit_page_shows_volume_kinds_channels_topics_and_largest_campaigns() -> None:
    page = render_unit(unit_report())
    assert '<html lang="ar" dir="rtl">' in page
    assert "إدارة صوت المستفيد" in page
    assert "Voice of the Customer" in page
    assert page.count("<svg ") == 4
    assert ">najiz-app</text>" in page  # a topic, by its slug (no names): shown once
    assert "<td><b>300</b>" in page
    assert "<script" not in page


def test_each_comment_costs_little_markup_so_a_100k_comment_page_stays_lean() -> None:
    report = consultation_report(2_000)
    items = comment_items(report.comments, {}, {})
    text = sum(len(c.text.encode()) + len(c.reference) for c in report.comments)
    escapes = sum(c.text.count("<") * 3 for c in report.comments)  # &lt; and friends
    overhead = (len(items.encode()) - text - escapes) / len(report.comments)
    assert overhead < 140, overhead


def test_long_labels_are_cut_to_one_line_with_the_full_text_kept_in_the_title() -> None:
    label = "ع" * 300
    svg = charts.bars([charts.Bar(label, "E" * 300, 1)], whole=1, title="t")
    assert f"<title>{label} — {'E' * 300}: 1 · 100%</title>" in svg
    shown = re.findall(r'class="ar">([^<]*)<', svg)[0]
    assert shown.endswith("…")
    assert len(shown) < 80


def test_shares_below_one_percent_are_not_shown_as_zero() -> None:
    assert charts.percent(1, 1_000) == "<1%"
    assert charts.percent(0, 1_000) == "0%"
    assert charts.percent(5, 0) == "0%"
    assert charts.percent(1, 3) == "33%"


def test_days_beyond_the_listed_channels_are_drawn_as_other() -> None:
    days = [DayCount(day=date(2026, 3, 1), count=10, by_channel=(Count(key="a", count=4),))]
    series = charts.series_of(days, {"a": ("أ", "A")})
    assert [s.key for s in series] == ["a", ""]
    svg = charts.timeline(days, series, title="t")
    assert svg.count("<rect ") == 2
    assert charts.OTHER_COLOUR in svg
