"""The digest e-mail: an inbox's waiting submissions in one message, built by pure functions.

Same quality as the single e-mail (`services.notifier.messages`): Arabic-first and bilingual,
each label in both languages with its own `lang`/`dir`, everything a submitter typed isolated
(`<bdi>`/`dir="auto"` in HTML, FSI…PDI in text), HTML autoescaped, headers through `mime`.

What it holds (docs/notifier.md, "Digest e-mail"; the mechanism is docs/digests.md):

- a header block: unit, mailbox, how many submissions, the window (Asia/Riyadh and UTC, and the
  oldest submission when leftovers from earlier windows came along), and why they waited (a
  surge, campaign copies);
- the submissions grouped by consultation project (`legislation_ref`, then those on no draft
  law), and in each by campaign (its count here, its latest known size, its first reference and
  a representative text), then the single submissions one by one;
- past `list_limit` submissions, only the projects, campaigns and counts, and the full list as
  a CSV attachment (UTF-8 with a BOM, so Excel shows Arabic).

The message never exceeds `MAX_BYTES`: when the list would, the attachment carries shorter
subjects, then none, then no archive links (each step said in the e-mail); a listed digest that
would is sent as counts and an attachment instead. The bytes depend only on the `Digest`, so a
digest sent again after a crash is the same message.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final

from services.notifier import mime
from services.notifier.digests import Digest, DigestItem, digest_message_id
from services.notifier.messages import (
    RIYADH,
    SNIPPET_MAX,
    Composer,
    Email,
    Label,
    _from,
    one_line,
    templates,
)
from shared.directory import Channel, Unit
from shared.models import KIND_LABELS, Kind

MAX_BYTES: Final = 10_000_000
"""The largest digest e-mail, headers and encodings included (10 MB, counted in decimal)."""
LIST_LIMIT: Final = 200
CAMPAIGNS_SHOWN: Final = 200
"""A counted digest's body shows at most this many campaigns, the largest (all are attached)."""
CSV_COLUMNS: Final = (
    "reference",
    "submission_id",
    "received_at_utc",
    "kind",
    "channel",
    "topic",
    "legislation_ref",
    "campaign_id",
    "campaign_first_reference",
    "late",
    "subject",
    "archive_link",
)
BOM: Final = "\ufeff"
_FORMULA: Final = frozenset("=+-@")
# What the sentence saying how the attachment was cut may add to the body (both parts, encoded).
_NOTE_SLACK: Final = 4_000
# What the attachment carries, fullest first, when the e-mail must shrink to fit MAX_BYTES:
# subjects up to this many characters (None: the item's whole subject, 0: none), archive links.
_FITS: Final[tuple[tuple[int | None, bool], ...]] = (
    (None, True),
    (100, True),
    (40, True),
    (0, True),
    (0, False),
)


@dataclass(frozen=True, slots=True)
class ItemView:
    """One submission as a digest lists it."""

    reference: str
    link: str
    kind: Label
    channel: Label
    received: str
    """Riyadh time, the date left out when it is the window's."""
    subject: str | None
    """Its subject, or the start of its text; None for a unit without personal data."""
    late: bool


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign's submissions in this digest."""

    campaign_id: str
    count: int
    size: int
    """Its latest known size: the largest `campaign_size` among its items here."""
    first_reference: str
    first_link: str | None
    """The archive link of the first member, when it is one of this digest's items."""
    representative: str | None
    """The subject or text of its earliest item here; None for a unit without personal data."""
    members: tuple[ItemView, ...]
    """Its items (listed digests only; empty when counted)."""


@dataclass(frozen=True, slots=True)
class GroupView:
    """One consultation project (or none) and its submissions."""

    legislation_ref: str | None
    count: int
    campaigns: tuple[CampaignView, ...]
    singles: tuple[ItemView, ...]
    """Single submissions (listed digests only)."""
    single_count: int


@dataclass(frozen=True, slots=True)
class DigestView:
    """Everything the digest templates may show."""

    lang: str
    dir: str
    align: str
    subject_line: str
    message_id: str
    digest_id: str
    unit: Label
    mailbox: str
    count: str
    count_ar: str
    window_riyadh: str
    window_utc: str
    oldest_riyadh: str | None
    oldest_utc: str | None
    surge: int
    campaign_copies: int
    personal_data: bool
    listed: bool
    """True: every submission is in the body; False: counts, and the list is attached."""
    groups: tuple[GroupView, ...]
    campaigns_more: int
    """Campaigns left out of a counted digest's body (all are in the attachment)."""
    campaigns_more_items: int
    attachment: str | None
    subject_chars: int | None
    """Subjects in the attachment were cut to this many characters (0: left out) to fit."""
    links_in_attachment: bool
    archive_url: str


def arabic_count(count: int) -> str:
    """Return "`count` submissions" in Arabic, the noun agreeing with the number."""
    if count == 1:
        return "مشاركة واحدة"
    if count == 2:
        return "مشاركتان"
    if 3 <= count % 100 <= 10:
        return f"{count:,} مشاركات"
    return f"{count:,} مشاركة"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _span(start: datetime, end: datetime) -> str:
    """Return `start–end` as `YYYY-mm-dd HH:MM–HH:MM`, the end's date too when it differs."""
    head = start.strftime("%Y-%m-%d %H:%M")
    tail = end.strftime("%H:%M" if end.date() == start.date() else "%Y-%m-%d %H:%M")
    return f"{head}–{tail}"


def _zone(moment: datetime) -> str:
    offset = moment.astimezone(RIYADH).strftime("%z")
    return f"Asia/Riyadh, UTC{offset[:3]}:{offset[3:]}"


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…" if limit else ""


@dataclass(frozen=True, slots=True)
class DigestComposer:
    """Builds a digest e-mail from the directory and the notifier's settings (as `Composer`)."""

    units: Mapping[str, Unit]
    channels: Mapping[str, Channel]
    sender: str
    archive_url: str
    message_id_domain: str

    @classmethod
    def like(cls, composer: Composer) -> DigestComposer:
        """Return the digest composer with the same directory and settings as `composer`."""
        return cls(
            units=composer.units,
            channels=composer.channels,
            sender=composer.sender,
            archive_url=composer.archive_url,
            message_id_domain=composer.message_id_domain,
        )

    def personal_data(self, unit: str) -> bool:
        """Return whether `unit` receives personal data; an unknown unit does not."""
        known = self.units.get(unit)
        return known.personal_data if known is not None else False

    def compose(self, digest: Digest, list_limit: int = LIST_LIMIT) -> Email:
        """Return the complete digest e-mail, at most `MAX_BYTES`, addressed to its mailbox.

        Up to `list_limit` submissions are listed in the body; past it (or when the listed
        e-mail would exceed `MAX_BYTES`) the body counts them and the full list is attached.
        """
        if len(digest.items) <= list_limit:
            composed = self._compose(digest, listed=True, fit=_FITS[0], list_limit=list_limit)
            if len(composed.data) <= MAX_BYTES:
                return composed
        # The body hardly changes between the forms (one sentence says what the attachment
        # lacks): measure it once, then take the fullest attachment that fits beside it.
        rows = self.csv_rows(digest)
        full = csv_bytes(rows)
        composed = self._compose(
            digest, listed=False, fit=_FITS[0], list_limit=list_limit, attached=full
        )
        if len(composed.data) <= MAX_BYTES:
            return composed
        body = len(composed.data) - _base64_size(len(full))
        for fit in _FITS[1:]:
            attached = csv_bytes(rows, subject_chars=fit[0], links=fit[1])
            if body + _base64_size(len(attached)) + _NOTE_SLACK <= MAX_BYTES:
                break
        # The last, leanest form when none fits: DigestSettings.max_items keeps it under.
        return self._compose(
            digest, listed=False, fit=fit, list_limit=list_limit, attached=attached
        )

    def view(
        self,
        digest: Digest,
        *,
        listed: bool,
        attachment: str | None = None,
        fit: tuple[int | None, bool] = _FITS[0],
        campaigns_shown: int = LIST_LIMIT,
    ) -> DigestView:
        """Return what the templates show for `digest`."""
        unit = self.units.get(digest.unit)
        personal = self.personal_data(digest.unit)
        end = _utc(digest.window_end)
        start = _utc(digest.window_start)
        end_local, start_local = end.astimezone(RIYADH), start.astimezone(RIYADH)
        items = digest.items
        oldest = min((_utc(item.received_at) for item in items), default=start)
        name = one_line(digest.unit)  # an unknown unit is named by its id, made safe for To:
        unit_label = Label(unit.name_ar, unit.name_en) if unit else Label(name, name)
        count = f"{len(items):,}"
        hours = f"{start_local:%H:%M}–{end_local:%H:%M}"
        subject_line = one_line(
            f"ملخص صدى — {unit_label.ar} — {arabic_count(len(items))} — "
            f"Sada digest: {count} submission{'' if len(items) == 1 else 's'}, "
            f"{hours} (Riyadh)"
        )
        groups, more, more_items = self._groups(
            items, personal=personal, listed=listed, day=end_local, campaigns_shown=campaigns_shown
        )
        reasons = Counter(item.why for item in items)
        return DigestView(
            lang="ar",
            dir="rtl",
            align="right",
            subject_line=subject_line,
            message_id=digest_message_id(digest, self.message_id_domain),
            digest_id=digest.digest_id,
            unit=unit_label,
            mailbox=digest.mailbox,
            count=count,
            count_ar=arabic_count(len(items)),
            window_riyadh=f"{_span(start_local, end_local)} ({_zone(end)})",
            window_utc=f"{_span(start, end)} UTC",
            oldest_riyadh=(
                f"{oldest.astimezone(RIYADH):%Y-%m-%d %H:%M:%S} ({_zone(oldest)})"
                if oldest < start
                else None
            ),
            oldest_utc=f"{oldest:%Y-%m-%d %H:%M:%S} UTC" if oldest < start else None,
            surge=reasons["surge"] + reasons["individual"],
            campaign_copies=reasons["campaign"],
            personal_data=personal,
            listed=listed,
            groups=groups,
            campaigns_more=more,
            campaigns_more_items=more_items,
            attachment=attachment,
            subject_chars=fit[0] if fit[0] is not None and personal else None,
            links_in_attachment=fit[1],
            archive_url=self.archive_url,
        )

    def _item(self, item: DigestItem, *, personal: bool, day: datetime) -> ItemView:
        kind = _kind_label(item.kind)
        channel = self.channels.get(item.channel)
        received = _utc(item.received_at).astimezone(RIYADH)
        return ItemView(
            reference=item.reference,
            link=self.archive_url + item.submission_id,
            kind=kind,
            channel=Label(channel.name_ar, channel.name_en)
            if channel
            else Label(item.channel, item.channel),
            received=f"{received:%H:%M:%S}"
            if received.date() == day.date()
            else f"{received:%Y-%m-%d %H:%M:%S}",
            subject=_headline(item) if personal else None,
            late=item.late,
        )

    def _groups(
        self,
        items: Sequence[DigestItem],
        *,
        personal: bool,
        listed: bool,
        day: datetime,
        campaigns_shown: int,
    ) -> tuple[tuple[GroupView, ...], int, int]:
        """Return the projects (most submissions first, no project last) and what was left out.

        In a project: its campaigns (most submissions here first), then its single
        submissions in the order they were received. A counted digest shows at most
        `campaigns_shown` campaigns in all, the largest.
        """
        by_project: dict[str | None, list[DigestItem]] = {}
        for item in items:
            by_project.setdefault(item.legislation_ref, []).append(item)
        ordered = sorted(
            by_project.items(), key=lambda kv: (kv[0] is None, -len(kv[1]), kv[0] or "")
        )
        shown: set[str] | None = None
        more = more_items = 0
        if not listed:
            sizes = Counter(item.campaign_id for item in items if item.campaign_id is not None)
            ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = {cid for cid, _ in ranked[:campaigns_shown]}
            more = max(len(ranked) - campaigns_shown, 0)
            more_items = sum(n for _, n in ranked[campaigns_shown:])
        groups = []
        for ref, members in ordered:
            campaigns: dict[str, list[DigestItem]] = {}
            singles: list[DigestItem] = []
            for item in members:
                if item.campaign_id is None:
                    singles.append(item)
                else:
                    campaigns.setdefault(item.campaign_id, []).append(item)
            views = [
                self._campaign(cid, copies, personal=personal, listed=listed, day=day)
                for cid, copies in campaigns.items()
                if shown is None or cid in shown
            ]
            views.sort(key=lambda c: (-c.count, c.first_reference, c.campaign_id))
            singles.sort(key=_received_order)
            groups.append(
                GroupView(
                    legislation_ref=ref,
                    count=len(members),
                    campaigns=tuple(views),
                    singles=tuple(self._item(item, personal=personal, day=day) for item in singles)
                    if listed
                    else (),
                    single_count=len(singles),
                )
            )
        return tuple(groups), more, more_items

    def _campaign(
        self,
        campaign_id: str,
        copies: list[DigestItem],
        *,
        personal: bool,
        listed: bool,
        day: datetime,
    ) -> CampaignView:
        copies.sort(key=_received_order)
        earliest = copies[0]
        first = earliest.campaign_first_reference or earliest.reference
        founder = next((item for item in copies if item.reference == first), None)
        text = (earliest.subject or earliest.text) if personal else None
        return CampaignView(
            campaign_id=campaign_id,
            count=len(copies),
            size=max(item.campaign_size or 0 for item in copies),
            first_reference=first,
            first_link=self.archive_url + founder.submission_id if founder else None,
            representative=one_line(text) or None if text else None,
            members=tuple(self._item(item, personal=personal, day=day) for item in copies)
            if listed
            else (),
        )

    def csv_rows(self, digest: Digest) -> list[tuple[str, ...]]:
        """Return the attachment's rows (whole subjects and links), in the order received.

        A subject is one line, and one that a spreadsheet would read as a formula (`=`, `+`,
        `-`, `@`) starts with an apostrophe, which Excel shows as text (OWASP, CSV injection).
        """
        personal = self.personal_data(digest.unit)
        return [
            (
                item.reference,
                item.submission_id,
                _utc(item.received_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
                item.kind,
                item.channel,
                item.topic or "",
                item.legislation_ref or "",
                item.campaign_id or "",
                item.campaign_first_reference or "",
                "true" if item.late else "false",
                _inert(one_line(item.subject)) if personal and item.subject else "",
                self.archive_url + item.submission_id,
            )
            for item in sorted(digest.items, key=_received_order)
        ]

    def csv(self, digest: Digest, *, subject_chars: int | None = None, links: bool = True) -> bytes:
        """Return the full list as CSV: UTF-8 with a BOM (Excel then reads it as UTF-8), CRLF."""
        return csv_bytes(self.csv_rows(digest), subject_chars=subject_chars, links=links)

    def _compose(
        self,
        digest: Digest,
        *,
        listed: bool,
        fit: tuple[int | None, bool],
        list_limit: int,
        attached: bytes = b"",
    ) -> Email:
        filename = None if listed else attachment_name(digest)
        view = self.view(
            digest,
            listed=listed,
            attachment=filename,
            fit=fit,
            campaigns_shown=min(list_limit, CAMPAIGNS_SHOWN),
        )
        text, html = render(view)
        from_header, sender = _from(self.sender)
        header, words = mime.header, mime.unstructured_tokens
        headers = (
            header("Message-ID", words(view.message_id)),
            header("Date", [_rfc2822(digest.window_end)]),
            from_header,
            header("To", mime.mailbox_tokens(view.unit.ar, digest.mailbox)),
            header("Subject", words(view.subject_line)),
            header("Auto-Submitted", ["auto-generated"]),  # RFC 3834: no auto-replies to this
            header("X-Sada-Unit", words(one_line(digest.unit))),
            header("X-Sada-Digest", words(digest.digest_id)),
            header("X-Sada-Digest-Items", [str(len(digest.items))]),
        )
        outer, inner = boundaries(digest)
        if filename is None:
            data = mime.alternative(headers, text, html, inner)
        else:
            csv_file = mime.Attachment(
                filename=filename, content_type="text/csv; charset=utf-8", data=attached
            )
            data = mime.mixed(headers, text, html, csv_file, outer, inner)
        return Email(
            data=data,
            sender=sender,
            message_id=view.message_id,
            recipient=digest.mailbox,
            subject=view.subject_line,
            text=text,
            html=html,
        )


def csv_bytes(
    rows: Sequence[tuple[str, ...]], *, subject_chars: int | None = None, links: bool = True
) -> bytes:
    """Return `rows` (`csv_rows`) as CSV with a BOM, subjects cut and links left out if asked."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    if subject_chars is None and links:
        writer.writerows(rows)
    else:
        writer.writerows(
            (*row[:-2], _cut(row[-2], subject_chars), row[-1] if links else "") for row in rows
        )
    return out.getvalue().encode("utf-8")


def _inert(text: str) -> str:
    return "'" + text if text[:1] in _FORMULA else text


def _base64_size(size: int) -> int:
    # `mime._base64_lines`: 4 characters per 3 bytes, in lines of 76 ending in CRLF.
    encoded = 4 * -(-size // 3)
    return encoded + 2 * -(-encoded // 76)


def _received_order(item: DigestItem) -> tuple[datetime, str]:
    return (_utc(item.received_at), item.reference)


def _headline(item: DigestItem) -> str | None:
    """Return the item's subject, or the start of its text when it has none (one line)."""
    if item.subject and (subject := one_line(item.subject)):
        return subject
    return _cut(one_line(item.text[: 4 * SNIPPET_MAX]), SNIPPET_MAX) or None if item.text else None


def _kind_label(kind: str) -> Label:
    try:
        ar, en = KIND_LABELS[Kind(kind)]
    except ValueError:
        return Label(kind, kind)
    return Label(ar, en)


def _rfc2822(moment: datetime) -> str:
    return format_datetime(_utc(moment))


def attachment_name(digest: Digest) -> str:
    """Return the CSV's file name: the unit and the window's end in Riyadh time."""
    end = _utc(digest.window_end).astimezone(RIYADH)
    unit = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in digest.unit)
    return f"sada-digest-{unit}-{end:%Y%m%dT%H%M}.csv"


def boundaries(digest: Digest) -> tuple[str, str]:
    """Return the MIME boundaries (mixed, alternative): from the digest id, so a resend is equal."""
    return f"=_sada_m_{digest.digest_id}", f"=_sada_a_{digest.digest_id}"


def number(value: int) -> str:
    """Return a count with thousands separators (Western digits, as the references use)."""
    return f"{value:,}"


def render(view: DigestView) -> tuple[str, str]:
    """Return the (plain text, HTML) parts for `view`."""
    text, html = templates("digest.txt.j2", "digest.html.j2")
    return text.render(v=view, n=number), html.render(v=view, n=number)


_ITEM_LINE: Final = re.compile(r"^ *- \u2068(SADA-[0-9A-Z]{4}-[0-9A-Z]{4})\u2069", re.MULTILINE)


def listed_references(message: EmailMessage) -> list[str]:
    """Return the references a received digest notifies, in its order (the compose's inverse).

    Listed digests name each submission on an item line of the text part; past the list limit
    the attached CSV's `reference` column does. For tools that check a mailbox (`make demo`,
    the e2e suite): a campaign's "first" reference is not a member unless it is listed too.
    """
    for part in message.iter_attachments():
        if part.get_content_type() == "text/csv":
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            rows = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
            return [row["reference"] for row in rows]
    body = message.get_body(("plain",))
    if body is None:
        return []
    return _ITEM_LINE.findall(str(body.get_content()))
