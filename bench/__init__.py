"""`make bench`: Sada's throughput and latency against raw aiokafka and raw PyMongo.

Run with `python -m bench` (see `bench/README.md` for the method). Not part of `make test`.
"""
