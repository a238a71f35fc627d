"""The notifier: e-mails each routed submission to the mailbox of the unit that owns it.

It consumes `feedback.grouped.v1` (each routed submission with the campaign of near-identical
submissions it joined, if any), renders a bilingual, right-to-left-correct e-mail (text and
HTML) that says so, sends it over a small pool of reused SMTP connections and publishes
`notification.sent` or `notification.failed` to `feedback.notifications.v1`. A MongoDB ledger
keyed by submission and unit makes the e-mail happen once as the unit sees it, across
redeliveries and restarts. A mailbox that refuses for now (4xx to RCPT TO) is parked and retried
on a schedule, announced as `notification.deferred` past its retry budget, so it never holds the
other units' e-mails (docs/notifier.md).
"""
