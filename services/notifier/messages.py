"""What a unit receives: the e-mail for a routed submission, built by pure functions.

The e-mail is `multipart/alternative` (plain text, then HTML), rendered from Jinja2 templates with
autoescaping for HTML. It is Arabic-first and bilingual: every label carries its Arabic and
English text, each with its own `lang`/`dir`; the layout is right-to-left for an Arabic
submission; and everything the submitter typed is isolated (`<bdi>` in HTML, U+2068/U+2069 in
text) so a reference number, an address or a Latin name keeps its order inside Arabic.

A submission that joined a campaign of near-identical ones (`payload.campaign` of the
`submission.grouped` event) gets a bilingual line saying so at the top of both parts, and an
`X-Sada-Campaign` header for mailbox rules; one that joined none gets neither.

A submission on a draft law that came after its consultation closed, or whose `legislation_ref`
names no project of the registry, says so in both languages beside the routing explanation
(docs/consultations.md): the Office decides what a late view is worth.

A unit configured with `personal_data: false` receives the reference, the metadata and a link to
the archive, and none of the submitter's words or contact details.

The message is assembled once, as the bytes the mailer sends (`services.notifier.mime`): the
standard library's `EmailMessage` with its modern policy cost more CPU per e-mail than all the
rest of the notifier together.
"""

from __future__ import annotations

import email
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import cache, lru_cache
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from services.notifier import mime
from shared import ids
from shared.directory import Channel, Unit
from shared.events import CampaignMembership, SubmissionGrouped, SubmissionRouted
from shared.models import KIND_LABELS, Answer, ConsultationMark, Submitter
from shared.scopes import campaign_scope

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
RIYADH: Final = ZoneInfo("Asia/Riyadh")
NOTIFICATION_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sada:notification")
_NOTIFICATION_PREFIX: Final = NOTIFICATION_NAMESPACE.bytes
SUBJECT_MAX: Final = 200
SNIPPET_MAX: Final = 80

# Bidi embeddings, overrides, isolates and marks: a subject line must not reorder what follows.
_BIDI_CONTROLS: Final = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e") | frozenset(
    "\u2066\u2067\u2068\u2069"
)
# What `one_line` turns into spaces: the control characters (category Cc, U+0000–U+001F and
# U+007F–U+009F) and the line and paragraph separators (Zl, Zp: U+2028, U+2029) — fixed sets
# (a unit test checks every code point) — and the bidi controls it removes: one `str.translate`.
LINE_BREAKERS: Final = frozenset(
    [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)] + ["\u2028", "\u2029"]
)
_ONE_LINE: Final = str.maketrans(
    {**dict.fromkeys(_BIDI_CONTROLS), **dict.fromkeys(LINE_BREAKERS, " ")}
)
_SPACES: Final = re.compile(r"\s+")
FSI: Final = "\u2068"  # FIRST STRONG ISOLATE: the plain-text counterpart of <bdi>
PDI: Final = "\u2069"  # POP DIRECTIONAL ISOLATE


@dataclass(frozen=True, slots=True)
class Label:
    """A text in both languages; templates show the submission's language first."""

    ar: str
    en: str


@dataclass(frozen=True, slots=True)
class AttachmentView:
    """Attachment metadata as shown; `link` is set only for an http(s) URL."""

    filename: str
    content_type: str
    size: str
    url: str
    link: str | None


@dataclass(frozen=True, slots=True)
class CampaignView:
    """The campaign a submission joined, as the e-mail's notice line shows it."""

    campaign_id: str
    size: int
    first_reference: str
    similar_to: str
    percent: int
    members_ar: str
    """"N near-identical submissions" in Arabic, the noun agreeing with N (`arabic_members`)."""


@dataclass(frozen=True, slots=True)
class ConsultationView:
    """What the e-mail says of the consultation: late (and since when closed) or unregistered."""

    late: bool
    closed_riyadh: str | None
    unregistered: bool


@dataclass(frozen=True, slots=True)
class EmailView:
    """Everything the templates may show. Personal fields are empty when the unit takes none."""

    lang: str
    dir: str
    align: str
    subject_line: str
    reference: str
    submission_id: str
    message_id: str
    unit: Label
    mailbox: str
    kind: Label
    channel: Label
    channel_id: str
    topic: str | None
    legislation_ref: str | None
    survey_id: str | None
    received_riyadh: str
    received_utc: str
    submitted_riyadh: str
    rule_id: str
    reason: str
    matched: tuple[tuple[str, str], ...]
    rules_version: str
    personal_data: bool
    archive_link: str
    subject: str | None
    body: str | None
    answers: tuple[Answer, ...]
    attachments: tuple[AttachmentView, ...]
    submitter: Submitter | None
    campaign: CampaignView | None
    consultation: ConsultationView | None


@dataclass(frozen=True, slots=True)
class Email:
    """A composed e-mail, ready for the mailer, with its parts kept for previews and tests.

    `data` is the whole message as sent (CRLF line breaks); `sender` and `recipient` are the
    envelope addresses (MAIL FROM, RCPT TO).
    """

    data: bytes
    sender: str
    message_id: str
    recipient: str
    subject: str
    text: str
    html: str

    @property
    def smtputf8(self) -> bool:
        """Whether an address is non-ASCII, which only a server with SMTPUTF8 accepts."""
        return not (self.sender.isascii() and self.recipient.isascii())

    @property
    def message(self) -> EmailMessage:
        """Return `data` parsed as a mail client reads it (for previews and tests; not cheap)."""
        parsed = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)  # policy.default's message factory
        return parsed


def notification_key(submission_id: str, unit: str) -> str:
    """Return the ledger key of the one e-mail a unit receives about a submission."""
    return f"{submission_id}:{unit}"


def _notification_uuid(submission_id: str, unit: str) -> str:
    # `str(uuid.uuid5(NOTIFICATION_NAMESPACE, key))`, without building a `UUID` (per e-mail).
    return ids.uuid5(_NOTIFICATION_PREFIX, notification_key(submission_id, unit))


def message_id(submission_id: str, unit: str, domain: str) -> str:
    """Return the deterministic Message-ID: a repeat of the same notification carries the same."""
    return f"<{_notification_uuid(submission_id, unit)}@{domain}>"


def boundary(submission_id: str, unit: str) -> str:
    """Return the MIME boundary: deterministic too, so a repeat is the same bytes."""
    return f"=_sada_{_notification_uuid(submission_id, unit).replace('-', '')}"


@cache
def _from(sender: str) -> tuple[str, str]:
    """Return the From header for the configured sender, and its address (the MAIL FROM)."""
    name, address = parseaddr(sender)
    return mime.header("From", mime.mailbox_tokens(name, address)), address


def one_line(text: str) -> str:
    """Return `text` as one safe line: controls and line breaks become spaces, bidi controls go."""
    return _SPACES.sub(" ", text.translate(_ONE_LINE)).strip()


def sanitise_subject(reference: str, *parts: str | None, limit: int = SUBJECT_MAX) -> str:
    """Return the subject: one line, no controls, at most `limit` chars, starting with the ref."""
    head = one_line(reference)
    pieces = [head, *(p for p in (one_line(part or "") for part in parts) if p)]
    line = " — ".join(pieces)
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rstrip()
    if len(cut) < len(head):  # a limit shorter than the reference keeps the reference whole
        return head[:limit]
    return cut + "…"


def _snippet(text: str | None) -> str | None:
    if not text:
        return None
    # `one_line` of a prefix is a prefix of `one_line` of the whole: a body may be 20,000
    # characters, of which only as many are read as the snippet needs.
    size = 4 * SNIPPET_MAX
    line = one_line(text[:size])
    while len(line) <= SNIPPET_MAX and size < len(text):
        size *= 4
        line = one_line(text[:size])
    return line if len(line) <= SNIPPET_MAX else line[: SNIPPET_MAX - 1].rstrip() + "…"


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _riyadh(moment: datetime) -> str:
    local = _as_utc(moment).astimezone(RIYADH)
    offset = local.strftime("%z")  # "+0300"
    return local.strftime(f"%Y-%m-%d %H:%M:%S (Asia/Riyadh, UTC{offset[:3]}:{offset[3:]})")


def _utc(moment: datetime) -> str:
    return _as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_size(size: int) -> str:
    """Return a byte count the way people read it (1.5 MB, 820 KB, 12 B)."""
    amount = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def similarity_percent(similarity: float) -> int:
    """Return a similarity (0–1) as a whole percentage; 100 only for an identical copy.

    A near copy at 0.996 reads 99: "100%" would tell the reader it is the very same text.
    """
    percent = round(similarity * 100)
    return percent if similarity >= 1 else min(percent, 99)


def arabic_members(size: int) -> str:
    """Return "`size` near-identical submissions" in Arabic, the noun agreeing with the number.

    After "one of" (واحدة من): two is the dual, without the numeral; a count ending in 3–10
    (3, 10, 105) takes the plural; every other count the singular (11, 412, 1000).
    """
    if size == 2:
        return "مشاركتين متطابقتين أو شبه متطابقتين"
    if 3 <= size % 100 <= 10:
        return f"{size} مشاركات متطابقة أو شبه متطابقة"
    return f"{size} مشاركة متطابقة أو شبه متطابقة"


def without_campaign(routed: SubmissionRouted) -> SubmissionGrouped:
    """Return `routed` read as the notifier's input: a grouped event that joined no campaign.

    For the two places a routed event still reaches the notifier: `sada notify preview` of a
    routed event, and a notification parked before the notifier consumed grouped events. The
    result keeps the routed event's id and time, and is never published: grouping is the
    campaigns service's decision.
    """
    payload = routed.payload
    return SubmissionGrouped.model_validate(
        {
            **routed.model_dump(),
            "event_type": "submission.grouped",
            "payload": {
                **payload.model_dump(),
                "scope": campaign_scope(payload.submission.legislation_ref, payload.decision.unit),
                "campaign": None,
            },
        }
    )


def campaign_view(campaign: CampaignMembership | None) -> CampaignView | None:
    """Return what the notice line shows of `campaign` (None: no line)."""
    if campaign is None:
        return None
    return CampaignView(
        campaign_id=campaign.campaign_id,
        size=campaign.size,
        first_reference=campaign.first_reference,
        similar_to=campaign.similar_to,
        percent=similarity_percent(campaign.similarity),
        members_ar=arabic_members(campaign.size),
    )


def consultation_view(mark: ConsultationMark | None) -> ConsultationView | None:
    """Return what the e-mail says of the consultation (None: registered and in time, or none)."""
    if mark is None or (mark.registered and not mark.late):
        return None
    closed = _riyadh(mark.closes_at) if mark.late and mark.closes_at is not None else None
    return ConsultationView(late=mark.late, closed_riyadh=closed, unregistered=not mark.registered)


def _safe_link(url: str) -> str | None:
    """Only http(s) URLs become links: a `javascript:` URL must stay inert text."""
    return url if re.match(r"^https?://", url, flags=re.IGNORECASE) else None


@dataclass(frozen=True, slots=True)
class Composer:
    """Builds the e-mail for a grouped event from the directory and the notifier's settings."""

    units: Mapping[str, Unit]
    channels: Mapping[str, Channel]
    sender: str
    archive_url: str
    message_id_domain: str

    def personal_data(self, unit: str) -> bool:
        """Return whether `unit` receives personal data; an unknown unit does not (safe default)."""
        known = self.units.get(unit)
        return known.personal_data if known is not None else False

    def view(self, event: SubmissionGrouped) -> EmailView:
        """Return what the templates show for `event`."""
        submission, decision = event.payload.submission, event.payload.decision
        unit = self.units.get(decision.unit)
        personal = self.personal_data(decision.unit)
        channel = self.channels.get(submission.channel)
        kind_ar, kind_en = KIND_LABELS[submission.kind]
        arabic = submission.language == "ar"
        subject_line = sanitise_subject(
            submission.reference,
            kind_ar if arabic else kind_en,
            (channel.name_ar if arabic else channel.name_en) if channel else submission.channel,
            (submission.subject or _snippet(submission.body)) if personal else None,
        )
        return EmailView(
            lang="ar" if arabic else "en",
            dir="rtl" if arabic else "ltr",
            align="right" if arabic else "left",
            subject_line=subject_line,
            reference=submission.reference,
            submission_id=submission.submission_id,
            message_id=message_id(submission.submission_id, decision.unit, self.message_id_domain),
            unit=Label(unit.name_ar, unit.name_en) if unit else Label(decision.unit, decision.unit),
            mailbox=decision.mailbox,
            kind=Label(kind_ar, kind_en),
            channel=(
                Label(channel.name_ar, channel.name_en)
                if channel
                else Label(submission.channel, submission.channel)
            ),
            channel_id=submission.channel,
            topic=submission.topic,
            legislation_ref=submission.legislation_ref,
            survey_id=submission.survey_id,
            received_riyadh=_riyadh(submission.received_at),
            received_utc=_utc(submission.received_at),
            submitted_riyadh=_riyadh(submission.submitted_at),
            rule_id=decision.rule_id,
            reason=decision.reason,
            matched=tuple((m.field, m.value) for m in decision.matched),
            rules_version=decision.rules_version[:12],
            personal_data=personal,
            archive_link=self.archive_url + submission.submission_id,
            subject=submission.subject if personal else None,
            body=submission.body if personal else None,
            answers=submission.answers if personal else (),
            attachments=tuple(
                AttachmentView(
                    filename=a.filename,
                    content_type=a.content_type,
                    size=human_size(a.size_bytes),
                    url=a.url,
                    link=_safe_link(a.url),
                )
                for a in (submission.attachments if personal else ())
            ),
            submitter=submission.submitter if personal else None,
            campaign=campaign_view(event.payload.campaign),
            consultation=consultation_view(submission.consultation),
        )

    def compose(self, event: SubmissionGrouped) -> Email:
        """Return the complete e-mail for `event`, addressed to the decision's mailbox.

        Every header value goes through `mime`, which keeps each header one logical line
        whatever the value holds: nothing a submitter typed can add a header.
        """
        view = self.view(event)
        text, html = render(view)
        decision = event.payload.decision
        from_header, sender = _from(self.sender)
        header, words = mime.header, mime.unstructured_tokens
        headers: tuple[str, ...] = (
            header("Message-ID", words(view.message_id)),
            header("Date", [format_datetime(_as_utc(event.occurred_at))]),
            from_header,
            header("To", mime.mailbox_tokens(view.unit.ar, decision.mailbox)),
            header("Subject", words(view.subject_line)),
            header("Auto-Submitted", ["auto-generated"]),  # RFC 3834: no auto-replies to this
            header("X-Sada-Reference", words(one_line(view.reference))),
            header("X-Sada-Rule", words(one_line(decision.rule_id))),
            header("X-Sada-Unit", words(one_line(decision.unit))),
            header("X-Sada-Submission-Id", words(one_line(view.submission_id))),
        )
        if view.campaign is not None:  # for mailbox rules: one folder per campaign
            headers += (header("X-Sada-Campaign", words(one_line(view.campaign.campaign_id))),)
        data = mime.alternative(headers, text, html, boundary(view.submission_id, decision.unit))
        return Email(
            data=data,
            sender=sender,
            message_id=view.message_id,
            recipient=decision.mailbox,
            subject=view.subject_line,
            text=text,
            html=html,
        )


def isolate(value: object) -> str:
    """Wrap each line of a value in FSI…PDI so plain-text viewers keep its direction."""
    return "\n".join(f"{FSI}{line}{PDI}" for line in str(value).split("\n"))


@cache
def environment() -> jinja2.Environment:
    """Return the template environment: HTML autoescaped, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=True, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["isolate"] = isolate
    return env


# The bilingual labels, `t(ar, en)` and `both(label)` in the templates, are functions rather
# than Jinja macros: a macro call costs more than the rest of a row, and the HTML e-mail has
# dozens. Labels are fixed texts and directory names (never submitter text), so they are cached.
_LABEL_DOT: Final = Markup(' <span style="color:#9aa5ad;">·</span> ')
_MUTED: Final = "#5b6770"


def _span(lang: str, text: str, muted: str | None = None) -> Markup:
    """Return `text` escaped in a span with its language and direction (muted: a colour)."""
    style = Markup(' style="color:{};font-weight:normal;"').format(muted) if muted else ""
    direction = "rtl" if lang == "ar" else "ltr"
    return Markup('<span lang="{}" dir="{}"{}>{}</span>').format(lang, direction, style, text)


@lru_cache(maxsize=1024)
def html_label(lang: str, ar: str, en: str, muted: str = _MUTED) -> Markup:
    """Return a label in both languages, `lang`'s first, the other muted, as HTML."""
    if lang == "ar":
        return _span("ar", ar) + _LABEL_DOT + _span("en", en, muted)
    return _span("en", en) + _LABEL_DOT + _span("ar", ar, muted)


def text_label(lang: str, ar: str, en: str) -> str:
    """Return a label in both languages, `lang`'s first, as plain text."""
    return f"{ar} · {en}" if lang == "ar" else f"{en} · {ar}"


@jinja2.pass_context
def _html_t(context: jinja2.runtime.Context, ar: str, en: str, muted: str = _MUTED) -> Markup:
    return html_label(context["v"].lang, ar, en, muted)


@jinja2.pass_context
def _html_both(context: jinja2.runtime.Context, label: Label) -> Markup:
    return html_label(context["v"].lang, label.ar, label.en)


@jinja2.pass_context
def _text_t(context: jinja2.runtime.Context, ar: str, en: str) -> str:
    return text_label(context["v"].lang, ar, en)


@jinja2.pass_context
def _text_both(context: jinja2.runtime.Context, label: Label) -> str:
    return text_label(context["v"].lang, label.ar, label.en)


@cache
def templates(text_name: str, html_name: str) -> tuple[jinja2.Template, jinja2.Template]:
    """Return a text and an HTML template with the bilingual `t(ar, en)` and `both(label)`.

    Both read the view `v`'s `lang` for which language comes first. Looked up once:
    `get_template` checks the files' modification times on every call.
    """
    env = environment()
    return (
        env.get_template(text_name, globals={"t": _text_t, "both": _text_both}),
        env.get_template(html_name, globals={"t": _html_t, "both": _html_both}),
    )


def render(view: EmailView) -> tuple[str, str]:
    """Return the (plain text, HTML) parts for `view`."""
    text, html = templates("email.txt.j2", "email.html.j2")
    return text.render(v=view), html.render(v=view)
