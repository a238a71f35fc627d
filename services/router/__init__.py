"""The router: classifies each accepted submission to the ministry unit that owns it.

It consumes `submission.accepted` from `feedback.accepted.v1`, applies the ordered rules of
`deploy/config/routing.yaml` (first match wins; pure and deterministic), and publishes
`submission.routed` to `feedback.routed.v1` with the unit, its mailbox and an explanation:
the rule, a readable reason, what matched, and the version (hash) of the rule file.
"""
