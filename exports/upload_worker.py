"""Read an upload in a worker process with a memory cap, so a file can cost at most the cap, never
the bot.

`exports.reader` refuses what its checks can see (sizes, zip bombs, sheets spanning too many rows or
columns) before python-calamine builds a grid, but calamine is a native parser: a shape the checks
miss could still make it allocate without bound, and a failed allocation in Rust aborts the whole
process (SIGABRT: "memory allocation of 549755813888 bytes failed"). So every upload is read by a
process of its own (`python -m exports.upload_worker`, started with asyncio's subprocess support, as
reports are written by `exports.worker`), whose address space is capped with `RLIMIT_AS`
(`ReadLimits.worker_max_mb`, setting `IMPORT_WORKER_MAX_MB`) and whose CPU time is capped with
`RLIMIT_CPU`. When the child dies — the cap, a crash, any signal or exit code — or sends no answer in
time, the upload is refused with `excel.file.too_complex`; the bot keeps running.

Reading in another process also keeps the bot's event loop free: calamine holds the GIL while it
parses, so reading in a thread of the bot held every other chat for as long as the parse took.

A worker is started ahead of each upload: the bot keeps one spare process that has done its imports
(~0.4 s of Python and python-calamine) and waits for its request; an upload takes it, and the next
spare is started when that read is over. Each process still reads exactly one upload, capped after
it has read its request, so a file that kills its worker kills nothing else, and the next upload
gets a fresh process as before. `prestart()` starts the first spare (the bot at start-up, the bench).

The request crosses the child's stdin as one pickle (the bytes, the file name, the limits); the
answer comes back on stdout: ("ok", Table without its grid, peak RSS in KiB, number of slices) and
the grid's slices, or ("refused", code, params, peak RSS).
The child only ever unpickles what the bot sent it; the bot unpickles what its own child wrote.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import io
import logging
import os
import pickle
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from exports.reader import Table, read_table
from storage.errors import DomainError
from storage.schemas.imports import ReadLimits

log = logging.getLogger(__name__)

# Wall time a read may take (a 50,000-row file: under a second of CPU) before the child is killed;
# the CPU limit below stops a busy child even if nobody waits for it.
TIMEOUT_SECONDS = 120.0
CPU_SECONDS = 120
_STDERR_KEPT = 2000  # characters of the child's stderr logged when it dies
ANSWER_SLICE = 2_000  # rows of the grid per pickle of the answer


@dataclass
class ReadOutcome:
    """What one read in the worker gave: the table, or the refusal; and what it cost."""

    table: Table | None = None
    error: DomainError | None = None
    peak_rss_kb: int = 0  # the worker's peak resident memory (0 when it died before answering)
    returncode: int | None = None
    seconds: float = 0.0


# --- the worker side ------------------------------------------------------------------------------


def _cap(max_mb: int) -> None:
    """Cap this process's address space and CPU time; python-calamine allocates through malloc,
    which fails (and the process aborts, or Python raises MemoryError) past the cap."""
    limit = max_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    cpu = CPU_SECONDS if hard == resource.RLIM_INFINITY else min(CPU_SECONDS, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, hard))


def _peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM: since exec, not the parent's)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _process_main() -> None:
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the answer
    try:
        content, filename, limits = pickle.load(sys.stdin.buffer)
    except EOFError:
        return  # a spare the bot never needed: it closed our stdin on its way out
    _cap(limits.worker_max_mb)
    # One read, then exit: what it builds (the sheet's rows, lists of plain values) holds no cycle,
    # and the collector's full passes over those rows were an eighth of the read's CPU.
    gc.disable()
    try:
        table = read_table(content, filename, limits)
    except DomainError as exc:
        pickle.dump(("refused", exc.code, dict(exc.params), _peak_rss_kb()), answer)
    else:
        # The grid in slices, each its own pickle: the bot unpickles one slice per turn of its
        # event loop (unpickling 50,000 rows at once held it for a fifth of a second).
        grid, table.grid = table.grid, []
        slices = range(0, len(grid), ANSWER_SLICE)
        pickle.dump(("ok", table, _peak_rss_kb(), len(slices)), answer, protocol=pickle.HIGHEST_PROTOCOL)
        for start in slices:
            pickle.dump(grid[start : start + ANSWER_SLICE], answer, protocol=pickle.HIGHEST_PROTOCOL)
    # Anything else (MemoryError at the cap included) propagates: the exit code says it failed.
    answer.close()


# --- the bot side ---------------------------------------------------------------------------------


def _worker_environment() -> dict[str, str]:
    """The worker imports `exports` from wherever this process did."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ)
    paths = [root, *[p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environment


_spare: subprocess.Popen[bytes] | None = None
_spare_lock = threading.Lock()


def _start_worker() -> subprocess.Popen[bytes]:
    """A worker process: it imports what it needs, then waits for its request on stdin."""
    return subprocess.Popen(
        [sys.executable, "-m", "exports.upload_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_worker_environment(),
    )


def prestart() -> None:
    """Start the spare worker now, if there is none (the bot at start-up; the bench)."""
    global _spare
    with _spare_lock:
        if _spare is None or _spare.poll() is not None:
            _spare = _start_worker()
            atexit.unregister(_stop_spare)  # registered once, however many uploads
            atexit.register(_stop_spare)


def _take_worker() -> subprocess.Popen[bytes]:
    """The spare if it is still waiting, else a new worker."""
    global _spare
    with _spare_lock:
        process, _spare = _spare, None
    if process is not None and process.poll() is None:
        return process
    if process is not None:
        _reap(process)
    return _start_worker()


def _stop_spare() -> None:
    """At exit: the spare reads end-of-file and returns."""
    global _spare
    with _spare_lock:
        process, _spare = _spare, None
    if process is not None:
        _reap(process)


def _reap(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(Exception):
        if process.stdin is not None:
            process.stdin.close()
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.close()


async def read_in_worker(
    content: bytes, filename: str, limits: ReadLimits, *, timeout: float = TIMEOUT_SECONDS
) -> ReadOutcome:
    """Read `content` in a capped worker process; never raises for what the file does to it."""
    started = time.perf_counter()
    request = pickle.dumps((content, filename, limits), protocol=pickle.HIGHEST_PROTOCOL)
    process = _take_worker()
    try:
        # communicate() in a thread (the process belongs to no event loop, so a spare outlives the
        # loop that started it): it writes the request (a child that dies early just stops reading
        # it) and reads both pipes to the end.
        raw, errors = await asyncio.to_thread(process.communicate, request, timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        log.warning("upload worker killed after %.0f s reading %r", timeout, filename)
        return _too_complex(None, started)
    except BaseException:
        _kill(process)  # cancelled: the child must not outlive the request
        raise
    finally:
        prestart()  # the next upload's worker starts while this one's rows are checked
    outcome = ReadOutcome(returncode=process.returncode, seconds=time.perf_counter() - started)
    reply: tuple[Any, ...] | None = None
    if process.returncode == 0 and raw:
        with contextlib.suppress(Exception):
            reply = await _unpickle(raw)
    if reply is None:
        log.warning(
            "upload worker died reading %r (exit code %s): %s",
            filename,
            process.returncode,
            errors.decode("utf-8", "replace")[:_STDERR_KEPT].strip(),
        )
        return _too_complex(process.returncode, started)
    if reply[0] == "ok":
        outcome.table, outcome.peak_rss_kb = reply[1], reply[2]
    else:
        outcome.error, outcome.peak_rss_kb = DomainError(reply[1], **reply[2]), reply[3]
    return outcome


async def _unpickle(raw: bytes) -> tuple[Any, ...]:
    """The worker's answer; the table's grid a slice per turn of the event loop."""
    stream = io.BytesIO(raw)
    reply: tuple[Any, ...] = pickle.load(stream)
    if reply[0] == "ok":
        table: Table = reply[1]
        for _ in range(reply[3]):
            table.grid += pickle.load(stream)
            await asyncio.sleep(0)
    return reply


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the worker; its pipes are closed and its exit collected (the thread still in
    `communicate` returns as the pipes close)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    with contextlib.suppress(BaseException):
        process.wait()


def _too_complex(returncode: int | None, started: float) -> ReadOutcome:
    return ReadOutcome(
        error=DomainError("excel.file.too_complex"),
        returncode=returncode,
        seconds=time.perf_counter() - started,
    )


async def read_upload(content: bytes, filename: str, limits: ReadLimits) -> Table:
    """The table of an upload, read in a capped worker process; a `DomainError` if it is refused,
    `excel.file.too_complex` if reading it killed the worker."""
    outcome = await read_in_worker(content, filename, limits)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.table is not None
    return outcome.table


if __name__ == "__main__":
    _process_main()
