"""Archive: stores every event of every Sada topic in MongoDB and serves a read-only audit API.

Every event lands once in `events` (its `_id` is the event id, so a redelivery is a no-op) on a
per-submission SHA-256 hash chain, so editing, deleting or inserting an archived event is found
by `sada audit verify`. `submissions` holds one append-only snapshot per status a submission
reached; the highest-ranked snapshot is its current state. The archive only ever inserts: an
update or a delete in its database is by definition tampering, and inserts are the one write
FerretDB 1.24 (SQLite) performs in constant time (see `store.py`).

The API's callers are named clients with scopes (`clients.py`): personal data only with the
`personal_data` scope (`personal_data.py`), and every read archived as an `archive.accessed`
event on a hash chain of its own before it is answered (`access.py`).
"""
