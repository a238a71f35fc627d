"""A labelled corpus of consultation comments, built deterministically from a seed.

Arabic and English, on a few draft laws: mass campaigns (a template sent many times with the
variations people and tools make: diacritics, letter variants, punctuation and spacing, an
added greeting or signature line, up to 10% of the words swapped for synonyms), organic
comments on the same articles in their own words, hard negatives that copy a campaign's
opening paragraph but ask for something else, and short texts sent identically. Each item's
`label` names its true group: two items are the same campaign exactly when their labels are
equal (and they share a scope).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

EN_WORDS = [
    "the",
    "draft",
    "law",
    "article",
    "clause",
    "provision",
    "ministry",
    "council",
    "citizens",
    "residents",
    "rights",
    "duties",
    "court",
    "judge",
    "appeal",
    "fine",
    "penalty",
    "license",
    "permit",
    "fee",
    "tax",
    "employer",
    "worker",
    "contract",
    "wage",
    "housing",
    "tenant",
    "landlord",
    "rent",
    "deposit",
    "school",
    "teacher",
    "student",
    "parent",
    "health",
    "clinic",
    "doctor",
    "patient",
    "data",
    "privacy",
    "consent",
    "record",
    "archive",
    "review",
    "period",
    "notice",
    "hearing",
    "public",
    "interest",
    "small",
    "business",
    "market",
    "price",
    "consumer",
    "protection",
    "complaint",
    "office",
    "officer",
    "deadline",
    "days",
    "months",
    "year",
    "budget",
    "transparency",
    "report",
    "audit",
    "committee",
    "member",
    "vote",
    "proposal",
    "amendment",
    "definition",
    "scope",
    "exemption",
    "transition",
    "compliance",
    "inspection",
    "authority",
    "municipality",
    "road",
    "traffic",
    "vehicle",
    "driver",
    "safety",
    "environment",
    "water",
    "waste",
    "energy",
    "digital",
    "service",
    "platform",
    "account",
    "identity",
    "access",
    "women",
    "children",
    "elderly",
    "disability",
    "family",
    "support",
]
AR_WORDS = [
    "مشروع",
    "النظام",
    "المادة",
    "الفقرة",
    "اللائحة",
    "الوزارة",
    "المجلس",
    "المواطنين",
    "المقيمين",
    "الحقوق",
    "الواجبات",
    "المحكمة",
    "القاضي",
    "الاستئناف",
    "الغرامة",
    "العقوبة",
    "الترخيص",
    "التصريح",
    "الرسوم",
    "الضريبة",
    "صاحب",
    "العمل",
    "العامل",
    "العقد",
    "الأجر",
    "السكن",
    "المستأجر",
    "المؤجر",
    "الإيجار",
    "التأمين",
    "المدرسة",
    "المعلم",
    "الطالب",
    "الأسرة",
    "الصحة",
    "العيادة",
    "الطبيب",
    "المريض",
    "البيانات",
    "الخصوصية",
    "الموافقة",
    "السجل",
    "المراجعة",
    "المدة",
    "الإشعار",
    "الجلسة",
    "المصلحة",
    "العامة",
    "المنشآت",
    "الصغيرة",
    "السوق",
    "الأسعار",
    "المستهلك",
    "الحماية",
    "الشكوى",
    "المكتب",
    "الموظف",
    "المهلة",
    "الأيام",
    "الأشهر",
    "السنة",
    "الميزانية",
    "الشفافية",
    "التقرير",
    "التدقيق",
    "اللجنة",
    "العضو",
    "التصويت",
    "المقترح",
    "التعديل",
    "التعريف",
    "النطاق",
    "الإعفاء",
    "المرحلة",
    "الانتقالية",
    "الامتثال",
    "التفتيش",
    "الهيئة",
    "البلدية",
    "الطريق",
    "المرور",
    "المركبة",
    "السائق",
    "السلامة",
    "البيئة",
    "المياه",
    "النفايات",
    "الطاقة",
    "الرقمية",
    "الخدمة",
    "المنصة",
    "الحساب",
    "الهوية",
    "الوصول",
    "المرأة",
    "الأطفال",
    "كبار",
    "السن",
    "الإعاقة",
    "الدعم",
]
_SYNONYMS = {
    "en": {
        "ask": "request",
        "request": "ask",
        "change": "amend",
        "amend": "change",
        "remove": "delete",
        "delete": "remove",
        "clear": "plain",
        "fair": "just",
        "law": "statute",
        "fine": "penalty",
        "penalty": "sanction",
        "days": "period",
        "citizens": "people",
        "support": "back",
        "protect": "safeguard",
        "urge": "call",
    },
    "ar": {
        "نطالب": "نطلب",
        "نطلب": "نرجو",
        "تعديل": "تغيير",
        "حذف": "إلغاء",
        "إلغاء": "حذف",
        "الغرامة": "العقوبة",
        "العقوبة": "الجزاء",
        "المواطنين": "الناس",
        "نؤيد": "ندعم",
        "حماية": "صون",
        "واضحة": "جلية",
        "عادلة": "منصفة",
        "المادة": "البند",
    },
}
_GREETINGS = {
    "en": ("Dear Legislations Office,", "Hello,", "To whom it may concern,"),
    "ar": ("السلام عليكم ورحمة الله وبركاته", "إلى مكتب التشريعات المحترم", "تحية طيبة وبعد"),
}
_SIGNATURES = {
    "en": ("Regards, a concerned citizen", "Thank you for listening.", "Sent from my phone"),
    "ar": ("وشكرا لكم", "مع خالص التحية والتقدير", "مواطن من الرياض"),
}
_REQUESTS = {
    "en": "we ask you to remove the fine and change the article so it is fair and clear "
    "for all citizens and we urge the council to protect small business during the "
    "transition period",
    "ar": "نطالب بحذف الغرامة وتعديل المادة لتكون عادلة وواضحة لجميع المواطنين ونرجو من "
    "المجلس حماية المنشآت الصغيرة خلال المرحلة الانتقالية",
}
_DIACRITICS = "\u064e\u064f\u0650\u0651\u0652"
_PUNCTUATION = {"en": ".,;!", "ar": "،؛.!؟"}


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled comment: the raw submission and its true group."""

    label: str
    kind: str
    """`campaign`, `organic`, `hard_negative`, `short`."""
    raw: dict[str, Any]


def sentence(rng: random.Random, vocabulary: list[str], n: int) -> str:
    """Return `n` words drawn from `vocabulary`."""
    return " ".join(rng.choice(vocabulary) for _ in range(n))


def _swap_synonyms(rng: random.Random, words: list[str], language: str, share: float) -> None:
    """Swap up to `share` of the words: a listed synonym when there is one, else a near word."""
    count = int(len(words) * share)
    vocabulary = EN_WORDS if language == "en" else AR_WORDS
    for index in rng.sample(range(len(words)), count):
        words[index] = _SYNONYMS[language].get(words[index], rng.choice(vocabulary))


def _letter_variants(rng: random.Random, text: str) -> str:
    """Write Arabic as people do: hamza dropped or added, ta marbuta as ha, some diacritics."""
    out = []
    for char in text:
        if char == "ا" and rng.random() < 0.3:
            char = rng.choice("أإآ")
        elif char in "أإ" and rng.random() < 0.5:
            char = "ا"
        elif char == "ة" and rng.random() < 0.5:
            char = "ه"
        elif char == "ي" and rng.random() < 0.2:
            char = "ى"
        out.append(char)
        if "\u0621" <= char <= "\u064a" and rng.random() < 0.15:
            out.append(rng.choice(_DIACRITICS))
        if char == " " and rng.random() < 0.05:
            out.append("\u0640")
    return "".join(out)


def _punctuate(rng: random.Random, words: list[str], language: str) -> str:
    """Join words with varied spacing and punctuation, and sometimes a line break."""
    out = []
    for word in words:
        out.append(word)
        roll = rng.random()
        if roll < 0.08:
            out.append(rng.choice(_PUNCTUATION[language]) + " ")
        elif roll < 0.12:
            out.append("  ")
        elif roll < 0.14:
            out.append("\n")
        else:
            out.append(" ")
    return "".join(out).strip()


def variant(rng: random.Random, template: str, language: str) -> str:
    """Return a copy of `template` as a campaign member sends it (the variations above)."""
    words = template.split()
    _swap_synonyms(rng, words, language, rng.choice((0.0, 0.03, 0.05, 0.08, 0.1)))
    text = _punctuate(rng, words, language)
    if language == "ar":
        text = _letter_variants(rng, text)
    else:
        text = "".join(c.upper() if rng.random() < 0.02 else c for c in text)
    if rng.random() < 0.3:
        text = f"{rng.choice(_GREETINGS[language])}\n{text}"
    if rng.random() < 0.3:
        text = f"{text}\n{rng.choice(_SIGNATURES[language])}"
    return text


def _raw(language: str, legislation_ref: str, n: int, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "istitlaa",
        "channel_ref": f"corpus-{n}",
        "kind": "consultation_response",
        "legislation_ref": legislation_ref,
        "language": language,
        "body": body,
        "submitted_at": "2026-03-01T10:00:00+03:00",
        **extra,
    }


def build(seed: int = 14, *, campaigns_per_project: int = 2, copies: int = 25) -> list[Item]:
    """Return the corpus in a shuffled, reproducible order."""
    rng = random.Random(seed)
    items: list[Item] = []
    counter = iter(range(1_000_000))
    for language in ("en", "ar"):
        vocabulary = EN_WORDS if language == "en" else AR_WORDS
        for project in range(3):
            ref = f"{language}-law-{project}"
            article = rng.sample(vocabulary, 40)  # the words people use about one article
            for campaign in range(campaigns_per_project):
                label = f"{ref}/campaign-{campaign}"
                opening = sentence(rng, vocabulary, rng.randint(22, 30))
                request = f"{sentence(rng, vocabulary, rng.randint(8, 14))} {_REQUESTS[language]}"
                template = f"{opening}\n\n{request}"
                for _ in range(copies):
                    body = variant(rng, template, language)
                    items.append(Item(label, "campaign", _raw(language, ref, next(counter), body)))
                for negative in range(3):
                    own_request = sentence(rng, vocabulary, rng.randint(25, 40))
                    body = f"{opening}\n\n{own_request}"
                    items.append(
                        Item(
                            f"{label}/own-request-{negative}",
                            "hard_negative",
                            _raw(language, ref, next(counter), body),
                        )
                    )
            for organic in range(30):
                body = sentence(rng, article, rng.randint(20, 70))
                items.append(
                    Item(
                        f"{ref}/organic-{organic}",
                        "organic",
                        _raw(language, ref, next(counter), body),
                    )
                )
            short = "أرفض هذه المادة" if language == "ar" else "I object to this article"
            for _ in range(6):
                text = _punctuate(rng, short.split(), language)
                items.append(
                    Item(f"{ref}/short", "short", _raw(language, ref, next(counter), text))
                )
            short_other = "أؤيد هذه المادة" if language == "ar" else "I support this article"
            items.append(
                Item(f"{ref}/short-other", "short", _raw(language, ref, next(counter), short_other))
            )
    # The same campaign text sent to another project is another campaign.
    first = next(item for item in items if item.kind == "campaign")
    moved = {**first.raw, "legislation_ref": "en-law-other", "channel_ref": "corpus-moved"}
    items.append(Item("en-law-other/moved", "campaign", moved))
    rng.shuffle(items)
    return items
