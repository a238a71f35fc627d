"""Sada's tests by tier: unit (pure), component (TestKafkaBroker), integration and e2e (real)."""
