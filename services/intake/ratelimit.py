"""The HTTP door's rate limit, shared out between intake replicas.

Each replica counts in its own memory and admits `limit ÷ replicas` per key, so the replicas
together never admit more than the limit, whatever way a load balancer spreads the requests
(`SADA_INTAKE_REPLICAS` must match the replica count: the Deployment's `replicas`, or compose's
`scale`). A shared counter in MongoDB was not chosen: intake has no database and would gain one
on its hot path (an outage would then either close the door or lift the limit), the `limits`
library's MongoDB storage needs the `motor` driver and TTL indexes (FerretDB 1.24 has none),
and on FerretDB 1.24 its per-request updates scan the collection. The price: a client whose
requests all reach one replica (one kept-alive connection) gets only its share; set the limit
with that in mind, or raise the limit with the replica count.
"""

from __future__ import annotations

from limits import RateLimitItem, parse


def replica_budget(limit: str, replicas: int) -> RateLimitItem:
    """Return each replica's share of `limit` (in `limits` notation) among `replicas`.

    Rounded down, so the replicas together never exceed the limit; raise ValueError when a
    share would be zero (more replicas than requests per window).
    """
    total = parse(limit)
    share = total.amount // replicas
    if share < 1:
        msg = (
            f"SADA_INTAKE_RATE_LIMIT {limit!r} shared among {replicas} replicas leaves each "
            "none: raise the limit or lower SADA_INTAKE_REPLICAS"
        )
        raise ValueError(msg)
    return type(total)(share, total.multiples, total.namespace)
