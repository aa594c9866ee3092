"""pytest wiring for the bootstrap tests; the harness lives in bootstrap_harness.py."""

from bootstrap_harness import start  # noqa: F401  (the fixture)
