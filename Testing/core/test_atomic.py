"""Atomic writes: a crash in the middle of a write leaves the previous file readable."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from MedSeqFTLib.errors import InputError
from MedSeqFTLib.io.atomic import atomic_write_json, atomic_write_with, read_json


def test_write_and_read_roundtrip(tmp_path):
    p = tmp_path / "a" / "b.json"
    atomic_write_json(p, {"x": 1, "y": [1, 2]})
    assert read_json(p) == {"x": 1, "y": [1, 2]}
    assert not [f for f in p.parent.iterdir() if f.name.endswith(".tmp")]


def test_exception_mid_write_keeps_old_content(tmp_path):
    p = tmp_path / "w.json"
    atomic_write_json(p, {"version": 1})

    def half_then_crash(tmp):
        tmp.write_text('{"version": 2, "trunc')
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        atomic_write_with(p, half_then_crash)
    assert read_json(p) == {"version": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["w.json"]  # temp file cleaned up


def test_sigkill_during_repeated_writes_never_leaves_a_broken_file(tmp_path):
    """A process rewriting a large workspace file is SIGKILLed at random moments."""
    target = tmp_path / "workspace.json"
    atomic_write_json(target, {"n": -1, "payload": []})
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(os.getcwd())!r})
        from MedSeqFTLib.io.atomic import atomic_write_json
        n = 0
        while True:
            atomic_write_json({str(target)!r}, {{"n": n, "payload": list(range(20000))}})
            n += 1
    """)
    for delay in (0.05, 0.13, 0.21, 0.34):
        proc = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(delay + 0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(target.read_text())  # never truncated
        assert data["payload"] == [] or len(data["payload"]) == 20000


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.json: file not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad.json: malformed JSON at line 1"):
        read_json(bad)
