"""Write a report's workbook off the event loop, fed with rows while the database streams them.

The event loop side (`WriterJob`) starts the writer with the small tables, then, for each long list in
turn, sends `begin` (its name and field names), chunks of rows, and `end`. The writer side
(`ChannelStreams`) hands those rows to `exports.reports.write_report` as plain iterators.

Two ways to run the writer:
- `process` (the default for the bot): a spawned worker process. Writing a workbook is pure-Python
  CPU work; in its own process it neither holds the bot's GIL nor waits for it, so the bot keeps
  answering, and the database streaming (bot process) overlaps with the writing (worker) on two cores.
  Rows cross a pipe pickled, one chunk at a time: at most two chunks are in flight.
- `thread`: a thread of the bot's process, fed through a bounded queue. No process start-up, but the
  writer shares the GIL with the event loop (which still answers, between the writer's time slices).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import resource
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

PROCESS = "process"
THREAD = "thread"
MODES = (PROCESS, THREAD)

_QUEUE_CHUNKS = 4  # thread mode: chunks waiting for the writer at most
_PUT_POLL_SECONDS = 0.2


class ReportWriterError(RuntimeError):
    """The writer failed; the message carries its traceback."""


class _Aborted(Exception):
    pass


@dataclass
class WriterResult:
    rows: dict[str, int] = field(default_factory=dict)
    peak_rss_kb: int = 0  # the worker process's peak resident memory (process mode)


# --- the writer side ------------------------------------------------------------------------------


class ChannelStreams:
    """The long lists as the event loop sends them: ("begin", name, keys), ("rows", [...]), ("end",)."""

    def __init__(self, receive: Any) -> None:
        self.receive = receive

    def _next(self) -> tuple[Any, ...]:
        message = self.receive()
        if message[0] == "abort":
            raise _Aborted
        return message

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


def _write(kind: str, data: Mapping[str, Any], receive: Any, path: str, tmpdir: str | None) -> dict[str, int]:
    from exports.reports import write_report

    return write_report(kind, data, ChannelStreams(receive), path, tmpdir=tmpdir)


def _process_main(connection: Any, kind: str, data: Mapping[str, Any], path: str, tmpdir: str | None) -> None:
    """The worker process: write, then answer ("done", rows, peak RSS) or ("error", traceback)."""
    try:
        rows = _write(kind, data, connection.recv, path, tmpdir)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        connection.send(("done", rows, peak))
    except _Aborted:
        pass
    except BaseException:
        with contextlib.suppress(OSError):
            connection.send(("error", traceback.format_exc()))
    finally:
        connection.close()


# --- the event loop side --------------------------------------------------------------------------


class WriterJob:
    """Feed one workbook writer from the event loop. Use `start`, then `begin`/`rows`/`end` for each
    long list in the report's order, then `finish` (or `abort` on failure)."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown writer mode {mode!r}")
        self.mode = mode
        self._pending: asyncio.Future[None] | None = None
        self._process: Any = None
        self._connection: Any = None
        self._queue: queue.Queue[tuple[Any, ...]] | None = None
        self._thread_result: Future[dict[str, int]] | None = None
        self._finished = False

    @classmethod
    async def start(
        cls, mode: str, kind: str, data: Mapping[str, Any], path: str, *, tmpdir: str | None = None
    ) -> WriterJob:
        job = cls(mode)
        if mode == PROCESS:
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe(duplex=True)
            process = context.Process(
                target=_process_main, args=(child, kind, dict(data), path, tmpdir), daemon=True
            )
            await asyncio.to_thread(process.start)
            child.close()
            job._process, job._connection = process, parent
        else:
            job._queue = queue.Queue(maxsize=_QUEUE_CHUNKS)
            result: Future[dict[str, int]] = Future()
            job._thread_result = result
            receive = job._queue.get

            def run() -> None:
                try:
                    result.set_result(_write(kind, data, receive, path, tmpdir))
                except _Aborted as exc:
                    result.set_exception(exc)
                except BaseException as exc:
                    result.set_exception(exc)

            threading.Thread(target=run, name=f"report-writer-{kind}", daemon=True).start()
        return job

    # -- sending -----------------------------------------------------------------------------------

    async def _send(self, message: tuple[Any, ...]) -> None:
        if self.mode == PROCESS:
            try:
                await asyncio.to_thread(self._connection.send, message)
            except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
                raise await self._writer_failure() from exc
            return
        assert self._queue is not None and self._thread_result is not None
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

    async def rows(self, rows: list[tuple[Any, ...]]) -> None:
        await self._post(("rows", rows))

    async def end(self) -> None:
        await self._post(("end",))

    # -- results -----------------------------------------------------------------------------------

    async def finish(self) -> WriterResult:
        await self._flush()
        self._finished = True
        if self.mode == PROCESS:
            try:
                message = await asyncio.to_thread(self._connection.recv)
            except (EOFError, OSError) as exc:
                raise await self._writer_failure() from exc
            finally:
                await self._close_process()
            if message[0] == "error":
                raise ReportWriterError(message[1])
            return WriterResult(rows=message[1], peak_rss_kb=message[2])
        assert self._thread_result is not None
        rows = await asyncio.wrap_future(self._thread_result)
        return WriterResult(rows=rows, peak_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    async def _writer_failure(self) -> ReportWriterError:
        if self.mode == PROCESS:
            try:
                if await asyncio.to_thread(self._connection.poll, 1.0):
                    message = self._connection.recv()
                    if message[0] == "error":
                        return ReportWriterError(message[1])
            except (EOFError, OSError):
                pass
            code = self._process.exitcode if self._process is not None else None
            return ReportWriterError(f"the report writer process ended (exit code {code})")
        return ReportWriterError("the report writer stopped")

    async def abort(self) -> None:
        """Stop the writer (after an error or a cancellation); never raises."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                await self._pending
            self._pending = None
        if self.mode == PROCESS:
            if self._process is not None and self._process.is_alive():
                self._process.terminate()
            await self._close_process()
            return
        if self._queue is not None and self._thread_result is not None and not self._thread_result.done():
            with contextlib.suppress(queue.Full):
                # Make room, then tell the writer to stop at its next read.
                while True:
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        break
                self._queue.put_nowait(("abort",))

    async def _close_process(self) -> None:
        process, self._process = self._process, None
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        if process is not None:
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
