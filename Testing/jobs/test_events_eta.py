"""events.jsonl format and the ETA estimator, against independent computations."""

import json
import math

import pytest

from MedSeqFTLib.jobs.eta import EtaEstimator
from MedSeqFTLib.jobs.events import EVENT_KEYS, EventWriter, last_event, make_event, read_events


def test_every_event_has_every_key_and_is_strict_json(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        w.emit("start", message="go")
        w.emit("progress", stage="fft", task="liver", step=3, total=10, losses={"dice": 0.5, "bad": math.nan}, eta_s=math.inf)
        w.emit("done", exit_code=0)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    objs = [json.loads(line) for line in lines]  # strict JSON: NaN/inf would not parse in other readers
    for ev in objs:
        assert set(ev) == set(EVENT_KEYS)
    assert objs[1]["losses"] == {"dice": 0.5, "bad": None} and objs[1]["eta_s"] is None
    assert objs[1]["step"] == 3 and objs[1]["total"] == 10 and objs[1]["task"] == "liver"
    assert objs[2]["event"] == "done" and objs[2]["exit_code"] == 0


def test_reader_skips_a_truncated_last_line_and_reads_from_an_offset(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        w.emit("start")
        w.emit("progress", stage="fft", task="a", step=1, total=2)
    size = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(b'{"event": "progress", "stage": "ff')  # a kill in the middle of a write
    evs = list(read_events(path))
    assert [e["event"] for e in evs] == ["start", "progress"]
    assert last_event(path)["step"] == 1
    assert list(read_events(path, start_byte=size)) == []
    assert list(read_events(tmp_path / "missing.jsonl")) == []


def test_bad_event_kind_or_level_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown event kind"):
        make_event("finished")
    with pytest.raises(ValueError, match="unknown level"):
        make_event("log", level="debug")


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_eta_is_weighted_mean_step_time_times_steps_left_plus_planned_stages():
    clock = Clock()
    eta = EtaEstimator(alpha=0.5, clock=clock)
    eta.plan([("fft", "t1", 4), ("kd_fft", "t2", 10), ("lora_kd", "t2", 6)])
    clock.t += 30.0                                          # model building before step 1 never counts
    assert eta.update("fft", "t1", 1, 4) is None            # no measured step yet
    durations = [2.0, 4.0, 3.0]
    ewma = None
    for k, d in enumerate(durations, start=2):
        clock.t += d
        got = eta.update("fft", "t1", k, 4)
        ewma = d if ewma is None else 0.5 * ewma + 0.5 * d
    # fft[t1] is the running stage: it left the plan; kd_fft and lora_kd are timed at the fft rate
    assert ewma == pytest.approx(3.0)  # 2, then (2+4)/2, then (3+3)/2
    assert got == pytest.approx(48.0)  # 0 fft steps left + (10 + 6) planned steps x 3 s
    # kd_fft starts: unknown until its first step is measured, then timed by its own rate
    assert eta.update("kd_fft", "t2", 1, 10) is None
    clock.t += 1.0
    assert eta.update("kd_fft", "t2", 2, 10) == pytest.approx(8 * 1.0 + 6 * 1.0)
    # a later kd_fft stage is timed with the measured kd_fft rate from its first report on
    eta.plan([("lora_kd", "t3", 6)])
    assert eta.update("kd_fft", "t3", 1, 10) == pytest.approx(9 * 1.0 + 6 * 1.0)


def test_eta_skipped_steps_and_resumed_stage():
    clock = Clock()
    eta = EtaEstimator(alpha=1.0, clock=clock)
    eta.update("fft", None, 500, 1000)                       # resumed at step 500
    clock.t += 10.0
    assert eta.update("fft", None, 510, 1000) == pytest.approx(490 * 1.0)  # 10 s / 10 steps
    with pytest.raises(ValueError):
        EtaEstimator(alpha=0)
