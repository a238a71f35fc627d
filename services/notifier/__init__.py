"""The notifier: e-mails each routed submission to the mailbox of the unit that owns it.

It consumes `feedback.routed.v1`, renders a bilingual, right-to-left-correct e-mail (text and
HTML), sends it over a small pool of reused SMTP connections and publishes `notification.sent` or
`notification.failed` to `feedback.notifications.v1`. A MongoDB ledger keyed by submission and
unit makes the e-mail happen once as the unit sees it, across redeliveries and restarts
(docs/notifier.md).
"""
