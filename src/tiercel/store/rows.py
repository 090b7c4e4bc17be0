"""What both stores share: how outputs are packed, how a job's attempt rows restore it, and how
every row is read out again as writes (for `tiercel store copy`).

The SQL differs between SQLite and PostgreSQL; the meaning of the rows does not, so it lives
here once.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tiercel.core.model import (
    AttemptRecord,
    Counts,
    Entries,
    JobId,
    JobState,
    Outcome,
    Report,
    Restored,
    RestoredTask,
    UserName,
    WorkerId,
)
from tiercel.core.reservations import Reservation
from tiercel.store.base import (
    AddJob,
    AddPlaces,
    EndJob,
    ForgetOutputs,
    Record,
    SaveReservation,
    SaveSiteJob,
    SaveToken,
    SaveWorkflow,
    SeenWorker,
    SetSealKey,
    TouchToken,
    WriteOp,
)
from tiercel.store.specs import spec_from_row

_RAW, _ZLIB = b"\x00", b"\x01"
COMPRESS_ABOVE = 512


def pack_output(data: bytes) -> bytes | None:
    """An output as stored: nothing when empty, zlib when large and it helps, else as it is."""
    if not data:
        return None
    if len(data) > COMPRESS_ABOVE:
        packed = zlib.compress(data, 1)
        if len(packed) < len(data):
            return _ZLIB + packed
    return _RAW + data


def unpack_output(blob: bytes | memoryview | None) -> bytes:
    if not blob:
        return b""
    blob = bytes(blob)
    return zlib.decompress(blob[1:]) if blob[:1] == _ZLIB else blob[1:]


def pack_entries(entries: Entries) -> bytes:
    """A job's entries as stored: one blob for the whole job, their newline-joined UTF-8 compressed."""
    return zlib.compress(entries.blob, 1)


def unpack_entries(blob: bytes | memoryview) -> Entries:
    return Entries(zlib.decompress(blob))


def restore(finals: Iterable[tuple[int, str]], unsettled: Iterable[tuple[int, int, int]],
            cpu: float | None = None) -> Restored:
    """A job's state from its rows: ``finals`` (index, outcome) of final attempts, in index order,
    and ``unsettled`` (index, attempts so far, failures so far) of tasks with no final attempt."""
    restored = Restored(cpu=cpu)
    spans = restored.settled
    for index, outcome in finals:
        if spans and spans[-1][1] == index:
            spans[-1] = (spans[-1][0], index + 1)
        elif not spans or spans[-1][1] < index:
            spans.append((index, index + 1))
        else:
            continue  # a second final row for one task cannot count twice
        if outcome == Outcome.DONE.value:
            restored.done += 1
        else:
            restored.failed += 1
    for index, attempts, failures in unsettled:
        restored.unsettled[int(index)] = RestoredTask(int(attempts), int(failures or 0))
    return restored


# What `export` reads from each table, in this order and these columns: both stores' SQL names
# them the same way (store/sqlite.py and store/postgres.py alias their own column names).
EXPORT_COLUMNS = {
    "jobs": "id, owner, spec, submitted, state, ended, done, failed, cancelled, reason, entries, places, forgotten, "
            "cpu",
    "attempts": "job, idx, attempt, outcome, final, worker, exit_code, started, ended, stdout, stderr, cpu",
    "tokens": "digest, user, role, label, created, last_used",
    "workers": "id, name, host, seen",
    "reservations": "name, site, slots, start, end, users, owner, created, mirror",
    "site_jobs": "site, native_id, payload, submitted",
    "workflows": "id, owner, name, submitted, jobs",
}


def exported(rows: Callable[[str], Iterable[tuple[Any, ...]]], seal_key: bytes, chunk: int) -> Iterator[list[WriteOp]]:
    """Every row of a store as the writes that make it again, in batches of at most ``chunk`` rows.

    ``rows(table)`` yields the table's rows with the columns of EXPORT_COLUMNS, jobs by id and
    attempts by job; the specs (and reservation users) already decoded from their JSON, and a job's
    entries as stored (their blob, or None)."""
    batch: list[WriteOp] = [SetSealKey(seal_key)]

    def full() -> bool:
        return len(batch) >= chunk

    ended: list[WriteOp] = []
    for (jid, owner, spec, submitted, state, end, done, failed, cancelled, reason, entries, places,
         forgotten, cpu) in rows("jobs"):
        job_spec = spec_from_row(spec)
        if entries is not None:
            job_spec = dataclasses.replace(job_spec, entries=unpack_entries(entries))
        batch.append(AddJob(JobId(jid), UserName(owner), job_spec, submitted))
        if state is not None:
            counts = Counts(total=job_spec.size, done=done, failed=failed, cancelled=cancelled)
            ended.append(EndJob(JobId(jid), JobState(state), counts, end, reason, cpu))
        if places:  # a JSON list (SQLite's text, PostgreSQL's decoded)
            ended.append(AddPlaces(JobId(jid), tuple(json.loads(places) if isinstance(places, str) else places)))
        if forgotten is not None:  # no index is in [0, 0): only when the outputs were dropped
            ended.append(ForgetOutputs(JobId(jid), 0, 0, forgotten))
        if full():
            yield batch
            batch = []
    records: list[AttemptRecord] = []
    for j, i, a, o, final, w, x, started, end, out, err, used in rows("attempts"):
        report = Report(JobId(j), i, a, Outcome(o), x, started, end, unpack_output(out), unpack_output(err),
                        cpu=used)
        records.append(AttemptRecord(report, bool(final), WorkerId(w)))
        if len(records) >= chunk:
            yield [*batch, Record(records)]
            batch, records = [], []
    if records:
        batch.append(Record(records))
    batch += ended  # after their attempts, as the manager writes them
    for digest, user, role, label, created, last_used in rows("tokens"):
        batch.append(SaveToken(digest, UserName(user), role, label, created))
        if last_used is not None:
            batch.append(TouchToken(digest, last_used))
    for wid, name, host, seen in rows("workers"):
        batch.append(SeenWorker(WorkerId(wid), name or "", host or "", seen or 0.0))
    for name, site, slots, start, end, users, owner, created, mirror in rows("reservations"):
        batch.append(SaveReservation(Reservation(name, site, slots, start, end, frozenset(users), owner, mirror),
                                     created))
    for wid, owner, name, submitted, jobs in rows("workflows"):  # a JSON list (SQLite's text)
        listed = json.loads(jobs) if isinstance(jobs, str) else jobs
        batch.append(SaveWorkflow(int(wid), UserName(owner), name, submitted,
                                  tuple((str(a), JobId(int(b))) for a, b in listed)))
    for site, native, payload, submitted in rows("site_jobs"):
        batch.append(SaveSiteJob(site, native, payload, submitted))
    if batch:
        yield batch
