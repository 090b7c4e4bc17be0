"""Data-aware placement: which waiting tasks of a job that reads files go to which place.

The queue's policy chain decides how many of a job's tasks each place may take; for a job with
inputs (core/data.py) this policy then decides which ones, task by task, from what the file
system says of their replicas:

1. a task goes to a place whose node holds every one of its inputs (a local read);
2. a task no such place can take now waits for one, unless copying its missing inputs to a free
   place is quicker than that wait: the wait is the tasks ahead of it for the same nodes over
   those nodes' slots, times the job's mean run time; the copy is its missing bytes over the copy
   rate. The tasks at the back of the queue wait longest, so they are the ones copied for;
3. a copy is made once per (file, node): a file already being copied to a node is not asked for
   again, and the task that asked for it waits for it there (``intents``);
4. a task whose input has no replica on a node that is up waits for one (a node may come back);
   one whose input does not exist is reported, for the job to fail it or wait, as it asked.

Pure: the snapshot of replicas (``DataView``) and the estimates come in, a ``Picks`` goes out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tiercel.core.data import DataView, Node, Path

NAME = "data"
SCAN = 4096  # waiting tasks of one job looked at per cycle (a million-task job is weighed by its front)


@dataclass(frozen=True, slots=True)
class Slot:
    """A place that may take ``free`` of the job's tasks now, on file-system node ``node`` (None: no
    node of its own, every read is remote)."""

    place: str
    node: Node | None
    free: int


@dataclass(frozen=True, slots=True)
class Estimates:
    runtime: float | None  # the job's mean task run time so far (None: none has ended yet)
    slots: Mapping[Node, int]  # slots of every connected place, by the node it is on (busy ones too)


@dataclass
class Picks:
    assign: dict[str, list[int]] = field(default_factory=dict)  # place -> task indexes, local reads
    copies: list[tuple[Path, Node]] = field(default_factory=list)  # replicas to make, each once
    intents: dict[int, Node] = field(default_factory=dict)  # task -> the node a copy is made for it on
    missing: dict[int, str] = field(default_factory=dict)  # task -> why it can never run (an input is gone)
    waiting: str = ""  # why tasks were left waiting (the first reason seen)


def holders(paths: Sequence[Path], view: DataView) -> frozenset[Node] | str:
    """The nodes up that hold every one of ``paths``, or why none can be known (a reason starting
    ``missing:`` when a file does not exist)."""
    common: frozenset[Node] | None = None
    for p in paths:
        hosts = view.replicas.get(p)
        if hosts is None:
            return f"locating {p} in Gfarm"
        if not hosts:
            return f"missing: input gfarm://{p} does not exist in Gfarm"
        readable = frozenset(h for h in hosts if (p, h) not in view.unreadable)
        if not readable:
            return (f"missing: no replica of gfarm://{p} is left that could be read (tried on "
                    f"{', '.join(sorted(hosts))})")
        up = readable - view.down
        if not up:
            return f"every replica of {p} is on a node that is down ({', '.join(sorted(hosts))})"
        common = up if common is None else common & up
    return common if common is not None else frozenset()


def pick(pending: Sequence[int], inputs_of: Callable[[int], tuple[Path, ...]], slots: Sequence[Slot],
         view: DataView, est: Estimates, intents: Mapping[int, Node]) -> Picks:
    """Choose the tasks each slot runs (local reads first), and the copies worth making."""
    out = Picks()
    if not view.reachable:
        out.waiting = f"Gfarm's metadata server is unreachable: {view.problem}"
        return out
    free = {s.place: s.free for s in slots if s.free > 0}
    by_node: dict[Node, list[str]] = {}
    for s in slots:
        if s.node is not None and s.place in free:
            by_node.setdefault(s.node, []).append(s.place)
    # a slot stays kept for each task whose copy is under way to its node
    for index, node in intents.items():
        if any((p, node) in view.copying for p in inputs_of(index)):
            for place in by_node.get(node, ()):
                if free.get(place, 0) > 0:
                    free[place] -= 1
                    break
    # what each waiting task needs, in queue order
    left: list[tuple[int, tuple[Path, ...], frozenset[Node]]] = []
    for index in pending[:SCAN]:
        paths = inputs_of(index)
        where = holders(paths, view)
        if isinstance(where, str):
            if where.startswith("missing: "):
                out.missing[index] = where.removeprefix("missing: ")
            out.waiting = out.waiting or where
            continue
        placed = _local(where, by_node, free, intents.get(index))
        if placed is not None:
            out.assign.setdefault(placed, []).append(index)
        else:
            left.append((index, paths, where))
    if left:
        _copies(left, slots, free, view, est, intents, out)
    return out


def _local(where: frozenset[Node], by_node: dict[Node, list[str]], free: dict[str, int],
           prefer: Node | None) -> str | None:
    """A place with a free slot on one of the nodes holding the task's inputs: on the node a copy was
    made for it when it can, else the freest."""
    best: str | None = None
    if prefer in where:
        best = next((p for p in by_node.get(prefer, ()) if free.get(p, 0) > 0), None)
    for node in where if best is None else ():
        for place in by_node.get(node, ()):
            if free.get(place, 0) > 0 and (best is None or free[place] > free[best]):
                best = place
    if best is not None:
        free[best] -= 1
    return best


def _copies(left: list[tuple[int, tuple[Path, ...], frozenset[Node]]], slots: Sequence[Slot], free: dict[str, int],
            view: DataView, est: Estimates, intents: Mapping[int, Node], out: Picks) -> None:
    """Tasks that no place holding their inputs can take now: copy for those that would wait longest."""
    spare = [s for s in slots if free.get(s.place, 0) > 0]
    if not spare:
        out.waiting = out.waiting or "waiting for a free slot where its inputs are"
        return
    if est.runtime is None:
        out.waiting = out.waiting or "waiting for a place holding its inputs (no run time known yet to weigh a copy)"
        return
    behind: dict[frozenset[Node], int] = {}  # tasks waiting for the same nodes, from the front
    for _, _, where in left:
        behind[where] = behind.get(where, 0) + 1
    asked: set[tuple[Path, Node]] = set(view.copying)
    for index, paths, where in reversed(left):  # the back of the queue waits longest
        queued = behind[where]
        behind[where] -= 1
        if index in intents:
            continue
        slots_there = sum(est.slots.get(n, 0) for n in where)
        wait = queued * est.runtime / slots_there if slots_there else float("inf")
        target = _cheapest(paths, spare, free, view)
        if target is None:
            break
        slot, cost_bytes = target
        cost = cost_bytes / view.copy_rate if view.copy_rate > 0 else float("inf")
        if cost >= wait:
            out.waiting = out.waiting or (f"waiting for a place holding its inputs: about {wait:.0f}s, less than "
                                          f"copying them ({cost:.0f}s)")
            continue
        node = slot.node
        if node is None:  # no node of its own: it reads remotely, nothing is copied
            free[slot.place] -= 1
            out.assign.setdefault(slot.place, []).append(index)
            continue
        for p in paths:
            if node not in view.replicas.get(p, ()) and (p, node) not in asked:
                asked.add((p, node))
                out.copies.append((p, node))
        free[slot.place] -= 1  # the slot is kept for it while its copy is made
        out.intents[index] = node


def _cheapest(paths: tuple[Path, ...], spare: list[Slot], free: dict[str, int],
              view: DataView) -> tuple[Slot, int] | None:
    best: tuple[Slot, int] | None = None
    for s in spare:
        if free.get(s.place, 0) <= 0:
            continue
        cost = sum(view.sizes.get(p, 0) for p in paths) if s.node is None else view.missing_bytes(paths, s.node)
        if best is None or cost < best[1]:
            best = (s, cost)
    return best


def costs(paths: Sequence[Path], slots: Sequence[Slot], view: DataView) -> list[tuple[str, Node | None, bool, int]]:
    """For explain: each place, its node, whether it holds every input, and the bytes to copy there."""
    out: list[tuple[str, Node | None, bool, int]] = []
    for s in slots:
        if s.node is None:
            out.append((s.place, None, False, sum(view.sizes.get(p, 0) for p in paths)))
        else:
            missing = view.missing_bytes(paths, s.node)
            local = all(s.node in view.replicas.get(p, ()) for p in paths) and s.node not in view.down
            out.append((s.place, s.node, local, 0 if local else missing))
    return out
