"""End to end: copies of one comment on a draft law become one campaign, in the e-mails and the
archive, through every real process (intake, router, two campaigns replicas, notifier, archive).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx

from shared import ids
from tests.e2e import harness
from tests.e2e.driver import ARCHIVE_TOKEN, send_kafka, wait_mailed
from tests.e2e.harness import Cluster

TEMPLATE = (
    "نطالب بإلغاء الغرامة اليومية في المادة التاسعة من مشروع النظام لأن المنشآت الصغيرة لا "
    "تستطيع دفعها خلال المرحلة الانتقالية ولا يمنح المشروع مهلة كافية للالتزام بشروط الترخيص "
    "الجديدة"
)
VARIANTS = (
    TEMPLATE,
    TEMPLATE.replace("الغرامة", "الغرامَة").replace("المادة", "المادّة"),  # diacritics
    "السلام عليكم، " + TEMPLATE + ". وشكراً",  # greeting and signature
    TEMPLATE.replace(" ", "  ").replace("لأن", "، لأن"),  # spacing, punctuation
)
COPIES = 12


def _raw(legislation_ref: str, n: int) -> dict[str, Any]:
    return {
        "channel": "istitlaa",
        "channel_ref": f"{legislation_ref}-{n}",
        "kind": "consultation_response",
        "legislation_ref": legislation_ref,
        "language": "ar",
        "body": VARIANTS[n % len(VARIANTS)],
        "submitted_at": "2026-12-01T10:00:00+03:00",
    }


def _mails(references: set[str]) -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    new = harness.MAILDIR / "new"
    parser = BytesParser(policy=policy.default)
    for name in os.listdir(new):
        with (new / name).open("rb") as handle:
            message = parser.parse(handle)
        reference = str(message["X-Sada-Reference"])
        if reference in references:
            assert isinstance(message, EmailMessage)
            found[reference] = message
    return found


async def _campaigns(legislation_ref: str, size: int) -> list[dict[str, Any]]:
    """Poll the archive's API until the draft law's campaign reaches `size` members."""
    headers = {"Authorization": f"Bearer {ARCHIVE_TOKEN}"}
    url = f"{harness.ARCHIVE_URL}/v1/campaigns"
    listed: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10.0, headers=headers) as client:
        for _ in range(120):
            response = await client.get(url, params={"legislation_ref": legislation_ref})
            assert response.status_code == 200, response.text
            listed = response.json()["items"]
            if listed and listed[0]["size"] >= size:
                return listed
            await asyncio.sleep(1.0)
    raise AssertionError(f"the archive lists {json.dumps(listed)[:500]}")


async def test_copies_of_one_comment_form_one_campaign_in_the_e_mails_and_the_archive(
    cluster: Cluster,
) -> None:
    legislation_ref = f"E2E-LAW-{uuid.uuid4().hex[:8]}"
    raws = [_raw(legislation_ref, n) for n in range(COPIES)]
    sids = [ids.submission_id("istitlaa", raw["channel_ref"], "") for raw in raws]
    references = {ids.reference(sid) for sid in sids}
    await send_kafka([json.dumps(raw, ensure_ascii=False).encode() for raw in raws])
    await wait_mailed(sids, within=120)

    mails = _mails(references)
    assert set(mails) == references
    campaign_ids = {str(m["X-Sada-Campaign"]) for m in mails.values() if m["X-Sada-Campaign"]}
    assert len(campaign_ids) == 1, campaign_ids  # one campaign, whichever replica decided
    alone = [ref for ref, m in mails.items() if m["X-Sada-Campaign"] is None]
    assert len(alone) == 1  # its first member was alone when it was decided
    for reference, message in mails.items():
        text = message.get_body(("plain",))
        assert text is not None
        content = text.get_content()
        if reference in alone:
            assert "near-identical" not in content
        else:
            assert f"first: {alone[0]}" in content.replace("\u2068", "").replace("\u2069", "")
            assert "near-identical submissions" in content

    listed = await _campaigns(legislation_ref, COPIES)
    assert len(listed) == 1
    campaign = listed[0]
    assert campaign["campaign_id"] == campaign_ids.pop()
    assert campaign["size"] == COPIES
    assert campaign["first_member"]["reference"] == alone[0]
    assert cluster.all_alive()
