"""Local, Docker-free infrastructure and runner used by `make run`, the tests and CI."""
