"""Fixtures of the job tests (helpers live in jobs_helpers.py: a unique module name, so other
folders' conftest modules never shadow them)."""

from jobs_helpers import fake_ws  # noqa: F401  (pytest fixture)
