"""Intake: the only door into Sada.

It validates and normalises every raw submission, from the Kafka topic
`feedback.submissions.v1` or from `POST /v1/submissions`, with one validation function, and
publishes `submission.accepted` (to `feedback.accepted.v1`) or `submission.rejected` with every
reason (to `feedback.rejected.v1`), keyed by the submission's deterministic id.
"""
