"""Write a report's workbook off the event loop, fed with rows while the database streams them.

The event loop side (`WriterJob`) starts the writer with the report's metadata (the writer creates
every sheet), then, for each long list in turn, sends `begin` (its name and field names), chunks of
rows and `end`, and last the small tables. The writer side (`ChannelStreams`) hands the rows to
`exports.reports.ReportWriter` as plain iterators. The long lists go first so that the writer is busy
with them while the database adds up the small tables.

Two ways to run the writer:
- `process` (the default for the bot): a worker process (`python -m exports.worker`, started with
  asyncio's subprocess support, so nothing of the bot's own main module is re-imported). Writing a
  workbook is pure-Python CPU work; in its own process it neither holds the bot's GIL nor waits for
  it, so the bot keeps answering, and the database streaming (bot process) overlaps with the writing
  (worker) on two cores. Messages cross the worker's stdin as pickles, one chunk of rows at a time;
  up to 32 MiB of them may wait in the pipe, so the database can run ahead of the writer. The
  worker answers on stdout.
- `thread`: a thread of the bot's process, fed through a bounded queue. No process start-up, but the
  writer shares the GIL with the event loop (which still answers, between the writer's time slices).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import queue
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

PROCESS = "process"
THREAD = "thread"
MODES = (PROCESS, THREAD)

_QUEUE_CHUNKS = 16  # thread mode: chunks waiting for the writer at most
_PIPE_BUFFER_BYTES = 32 * 1024 * 1024  # process mode: pickled rows waiting for the writer at most
_PUT_POLL_SECONDS = 0.2


class ReportWriterError(RuntimeError):
    """The writer failed; the message carries its traceback."""


class _Aborted(Exception):
    pass


@dataclass
class WriterResult:
    rows: dict[str, int] = field(default_factory=dict)
    peak_rss_kb: int = 0  # the writer's process's peak resident memory
    cpu_seconds: float = 0.0  # the worker process's CPU time (process mode)
    wait_seconds: float = 0.0  # how long the worker waited for rows from the bot process


# --- the writer side ------------------------------------------------------------------------------


class ChannelStreams:
    """The long lists as the event loop sends them: ("begin", name, keys), ("rows", [...]), ("end",)."""

    def __init__(self, receive: Callable[[], tuple[Any, ...]]) -> None:
        self.receive = receive

    def _next(self) -> tuple[Any, ...]:
        message = self.receive()
        if message[0] == "abort":
            raise _Aborted
        return message

    def data(self) -> Mapping[str, Any]:
        """The small tables, sent after the long lists."""
        message = self._next()
        if message[0] != "data":
            raise ReportWriterError(f"expected the small tables, got {message[0]!r}")
        tables: Mapping[str, Any] = message[1]
        return tables

    def rows(self, name: str, keys: Sequence[str]) -> Iterator[Sequence[Any]]:
        message = self._next()
        if message[0] != "begin" or message[1] != name:
            raise ReportWriterError(f"expected the rows of {name!r}, got {message[:2]!r}")
        if tuple(message[2]) != tuple(keys):
            raise ReportWriterError(f"fields of {name!r}: got {tuple(message[2])}, expected {tuple(keys)}")
        while True:
            message = self._next()
            if message[0] == "rows":
                yield from message[1]
            elif message[0] == "end":
                return
            else:
                raise ReportWriterError(f"unexpected message {message[0]!r} in {name!r}")


def _write(kind: str, meta: Mapping[str, Any], receive: Any, path: str, tmpdir: str | None) -> dict[str, int]:
    """Open every sheet, write the long lists as they come, then the small tables (sent last)."""
    from exports.reports import ReportWriter

    writer = ReportWriter(kind, meta, path, tmpdir=tmpdir)
    writer.open()
    streams = ChannelStreams(receive)
    writer.write_streams(streams)
    return writer.write_summaries(streams.data())


def _process_main() -> None:
    """The worker process: read (kind, meta, path, tmpdir), the long lists and the small tables from
    stdin, write the workbook, answer ("done", rows, peak RSS) or ("error", traceback) on stdout."""
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the answer
    source = sys.stdin.buffer
    waited = [0.0]  # seconds spent waiting for the bot process to send more (not unpickling)

    def receive() -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        message = pickle.load(source)
        waited[0] += max(0.0, (time.perf_counter() - wall) - (time.process_time() - cpu))
        return message

    try:
        kind, meta, path, tmpdir = receive()
        waited[0] = 0.0  # not the start-up
        rows = _write(kind, meta, receive, path, tmpdir)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_seconds = usage.ru_utime + usage.ru_stime
        pickle.dump(("done", rows, _peak_rss_kb(), cpu_seconds, waited[0]), answer)
    except _Aborted:
        pickle.dump(("error", "aborted"), answer)
    except BaseException:
        with contextlib.suppress(OSError):
            pickle.dump(("error", traceback.format_exc()), answer)
    finally:
        with contextlib.suppress(OSError):
            answer.close()


# --- the event loop side --------------------------------------------------------------------------


def _worker_environment() -> dict[str, str]:
    """The worker imports `exports` from wherever this process did."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ)
    paths = [root, *[p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environment


def _encode(message: tuple[Any, ...]) -> bytes:
    if message[0] == "rows":  # database rows become plain tuples on the way
        message = ("rows", [tuple(row) for row in message[1]])
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _peak_rss_kb() -> int:
    """This process's peak resident memory since it started its program (VmHWM; exec resets it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class WriterJob:
    """Feed one workbook writer from the event loop. Use `start`, then `begin`/`rows`/`end` for each
    long list in the report's order, then `finish` (or `abort` on failure)."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown writer mode {mode!r}")
        self.mode = mode
        self._pending: asyncio.Future[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._queue: queue.Queue[tuple[Any, ...]] | None = None
        self._thread_result: Future[dict[str, int]] | None = None

    @classmethod
    async def start(
        cls, mode: str, kind: str, meta: Mapping[str, Any], path: str, *, tmpdir: str | None = None
    ) -> WriterJob:
        job = cls(mode)
        if mode == PROCESS:
            job._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "exports.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=_worker_environment(),
            )
            assert job._process.stdin is not None
            # Let the database run ahead of the writer by up to this many bytes of pickled rows.
            job._process.stdin.transport.set_write_buffer_limits(high=_PIPE_BUFFER_BYTES)
            await job._send(("start", kind, dict(meta), path, tmpdir))
            return job
        job._queue = queue.Queue(maxsize=_QUEUE_CHUNKS)
        result: Future[dict[str, int]] = Future()
        job._thread_result = result
        receive = job._queue.get

        def run() -> None:
            # Running futures cannot be cancelled: a build cancelled while it waits for the writer
            # (asyncio.wrap_future cancels the future) must not make the answer below raise here.
            result.set_running_or_notify_cancel()
            try:
                result.set_result(_write(kind, meta, receive, path, tmpdir))
            except BaseException as exc:
                result.set_exception(exc)

        threading.Thread(target=run, name=f"report-writer-{kind}", daemon=True).start()
        return job

    # -- sending -----------------------------------------------------------------------------------

    async def _send(self, message: tuple[Any, ...]) -> None:
        if self.mode == PROCESS:
            assert self._process is not None and self._process.stdin is not None
            if message[0] == "start":
                message = message[1:]
            # Pickling a chunk is milliseconds of CPU: done in a thread, the loop stays free.
            payload = await asyncio.to_thread(_encode, message)
            try:
                self._process.stdin.write(payload)
                await self._process.stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise await self._writer_failure() from exc
            return
        assert self._queue is not None
        try:
            self._queue.put_nowait(message)
            return
        except queue.Full:
            pass
        await asyncio.to_thread(self._put_blocking, message)

    def _put_blocking(self, message: tuple[Any, ...]) -> None:
        assert self._queue is not None and self._thread_result is not None
        while True:
            if self._thread_result.done():
                self._thread_result.result()  # raises the writer's error
                raise ReportWriterError("the writer stopped before reading all rows")
            try:
                self._queue.put(message, timeout=_PUT_POLL_SECONDS)
                return
            except queue.Full:
                continue

    async def _flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def _post(self, message: tuple[Any, ...]) -> None:
        """Send in the background: the caller fetches the next chunk while this one is written."""
        await self._flush()
        self._pending = asyncio.ensure_future(self._send(message))

    async def begin(self, name: str, keys: Sequence[str]) -> None:
        await self._post(("begin", name, tuple(keys)))

    async def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        await self._post(("rows", rows))

    async def end(self) -> None:
        await self._post(("end",))

    async def data(self, data: Mapping[str, Any]) -> None:
        """The small tables (sent after the long lists, so the writer starts on those first)."""
        await self._post(("data", dict(data)))

    # -- results -----------------------------------------------------------------------------------

    async def finish(self) -> WriterResult:
        await self._flush()
        if self.mode == PROCESS:
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.close()
            message = await self._answer()
            if message is None or message[0] != "done":
                raise ReportWriterError(message[1] if message else self._exit_text())
            return WriterResult(
                rows=message[1], peak_rss_kb=message[2], cpu_seconds=message[3], wait_seconds=message[4]
            )
        assert self._thread_result is not None
        rows = await asyncio.wrap_future(self._thread_result)
        return WriterResult(rows=rows, peak_rss_kb=_peak_rss_kb())

    async def _answer(self) -> tuple[Any, ...] | None:
        """The worker's answer on stdout (None if it ended without one); waits for it to exit."""
        assert self._process is not None and self._process.stdout is not None
        raw = await self._process.stdout.read()
        await self._process.wait()
        if not raw:
            return None
        try:
            answer: tuple[Any, ...] = pickle.loads(raw)
            return answer
        except Exception:
            return None

    def _exit_text(self) -> str:
        code = self._process.returncode if self._process is not None else None
        return f"the report writer process ended without an answer (exit code {code})"

    async def _writer_failure(self) -> ReportWriterError:
        if self.mode == PROCESS:
            message = await self._answer()
            if message is not None and message[0] == "error":
                return ReportWriterError(message[1])
            return ReportWriterError(self._exit_text())
        return ReportWriterError("the report writer stopped")

    async def abort(self) -> None:
        """Stop the writer (after an error or a cancellation); never raises."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                await self._pending
            self._pending = None
        if self.mode == PROCESS:
            process = self._process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(BaseException):
                    await process.wait()
            return
        if self._queue is not None and self._thread_result is not None and not self._thread_result.done():
            # Make room, then tell the writer to stop at its next read.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(("abort",))


if __name__ == "__main__":
    _process_main()
