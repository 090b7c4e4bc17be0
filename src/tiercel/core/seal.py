"""Seals on handed-out attempts: proof that the manager gave this attempt to this worker.

A worker's report about a task (its result, or that it still holds it at a new hello)
is believed only if the manager handed that attempt to that worker. While the manager
runs, its own memory says so; after a restart, or for a late result of an attempt that
was handed out again since, it does not remember. So every attempt travels with a seal:
a keyed BLAKE2b digest of (worker, job, index, attempt) under a key only the manager
holds (kept in the store). A worker hands the seal back with its report; nobody else
can make one, so a worker cannot settle a task it was never given, nor another's.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from tiercel.core.model import JobId, WorkerId

SEAL_BYTES = 8  # 64 bits: forging one by guessing takes ~2^63 tries over the network
_PACK = struct.Struct("<qqq")


class Seal:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._by_worker: dict[WorkerId, hashlib.blake2b] = {}

    def make(self, worker: WorkerId, job: JobId, index: int, attempt: int) -> bytes:
        base = self._by_worker.get(worker)
        if base is None:  # the key and worker id are hashed once per worker, not once per task
            if len(self._by_worker) > 100_000:
                self._by_worker.clear()
            base = hashlib.blake2b(worker.encode(), key=self._key, digest_size=SEAL_BYTES)
            self._by_worker[worker] = base
        h = base.copy()
        try:
            h.update(_PACK.pack(job, index, attempt))
        except struct.error:  # out of range: no attempt the manager made
            return b""
        return h.digest()

    def check(self, worker: WorkerId, job: JobId, index: int, attempt: int, seal: bytes) -> bool:
        return len(seal) == SEAL_BYTES and hmac.compare_digest(self.make(worker, job, index, attempt), seal)
