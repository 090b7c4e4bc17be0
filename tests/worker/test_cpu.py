"""CPU time: measured by the worker as each task exits, carried beside the results, kept by the job."""

from __future__ import annotations

from tests.worker.test_runner_sweeps import run, spec
from tiercel.core.model import JobId, Outcome, Report, WorkerId, WorkerInfo
from tiercel.wire.codec import decode_from_worker, decode_hello, encode
from tiercel.wire.messages import Hello, Results


def test_a_task_that_computes_reports_its_cpu_time_and_one_that_sleeps_almost_none() -> None:
    busy = run(spec(("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"), append_index=False))
    idle = run(spec(("sleep", "0.3"), append_index=False))
    assert busy.outcome is Outcome.DONE and busy.cpu is not None and busy.cpu > 0.1
    assert idle.cpu is not None and idle.cpu < 0.1 < idle.ended - idle.started


def test_cpu_travels_beside_the_results_and_a_report_without_it_still_reads() -> None:
    measured = Report(JobId(1), 0, 1, Outcome.DONE, 0, 1.0, 2.0, b"", b"", b"s", cpu=1.25)
    plain = Report(JobId(1), 1, 1, Outcome.DONE, 0, 1.0, 2.0, b"", b"", b"s")
    raw = encode(Results([measured, plain], 2))
    assert raw["u"] == [1.25, None] and len(raw["r"][0]) == 10  # the report itself as before
    back = decode_from_worker(raw)
    assert isinstance(back, Results) and [r.cpu for r in back.reports] == [1.25, None]
    older = decode_from_worker({k: v for k, v in raw.items() if k != "u"})
    assert isinstance(older, Results) and [r.cpu for r in older.reports] == [None, None]
    nonsense = decode_from_worker({**raw, "u": [-5, "x"]})
    assert isinstance(nonsense, Results) and [r.cpu for r in nonsense.reports] == [None, None]
    hello = Hello(WorkerId("w"), WorkerInfo("w", "h", 1), 1, (), (measured,))
    assert decode_hello(encode(hello)).results[0].cpu == 1.25
