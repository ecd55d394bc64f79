"""SIGKILL at random points, then resume: the run completes and finished tasks stay byte-identical.

The protocol lives in ``Testing/benchmarks/kill_resume.py`` (which repeats it 20+ times); here it
runs 5 times with the fake hash-chain job (resume must equal an uninterrupted run) and 5 times
with the real ``refine`` on the tiniest workspace.
"""

import importlib.util
import random
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("kill_resume", BENCH / "kill_resume.py")
kill_resume = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_resume)

HAVE_REFINE = (Path(__file__).resolve().parents[2] / "MedSeqFTLib" / "cli" / "refine.py").is_file()


def test_fake_job_survives_five_random_sigkills(tmp_path):
    lines = []
    ok, failures = kill_resume.run_trials(kill_resume.FakeDriver(), tmp_path, trials=5, seed=1, log=lines.append)
    assert failures == [] and ok == 5, "\n".join(lines)
    assert sum(ln.startswith("trial") and "killed after" in ln and ln.endswith("-> ok") for ln in lines) == 5


def test_the_checker_notices_a_changed_finished_file(tmp_path):
    driver = kill_resume.FakeDriver(tasks=2, steps=3, sleep=0)
    ws = driver.setup(tmp_path)
    done = kill_resume.resume_to_end(driver, ws)
    assert kill_resume.check_trial(driver, ws, driver.finished_files(ws), done) == []
    tampered = dict(driver.finished_files(ws))
    tampered["tasks/t0/model.bin"] = "0" * 64
    assert kill_resume.check_trial(driver, ws, tampered, done) == ["tasks/t0/model.bin changed after the resume"]


@pytest.mark.skipif(not HAVE_REFINE, reason="medseqft refine is not in this checkout yet")
def test_refine_survives_five_random_sigkills(tmp_path):
    lines = []
    ok, failures = kill_resume.run_trials(kill_resume.RefineDriver(), tmp_path, trials=5, seed=3, max_delay=4.0,
                                           kills_per_chain=5, log=lines.append)
    assert failures == [] and ok == 5, "\n".join(lines)
