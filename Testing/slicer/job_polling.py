"""Polling a ``JobProcess`` until its events satisfy a condition (shared by the job tests)."""

import time


def run_until(job, predicate, timeout=20.0):
    """Poll ``job`` until ``predicate(events so far)``; every event read is returned."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += job.poll()
        if predicate(events):
            return events
        time.sleep(0.02)
    raise AssertionError(f"timed out in state {job.state}; events so far: {events[-3:]}")
