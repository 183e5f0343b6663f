"""math-verify in worker processes with a hard per-call timeout.

Why processes: math-verify's timeouts use `signal.alarm`, which only works on the main thread of the main
interpreter; OpenRLHF calls `reward_func` from a thread (`asyncio.to_thread`), and a computation inside
sympy's C code (a big-integer power) cannot be interrupted from Python at all. So each call runs in a
worker process, and the caller waits at most `timeout_s` wall-clock seconds for the answer. On timeout
the worker is killed (SIGKILL); the call reports status "timeout", which the rewards score 0 and count.
A worker that dies while working on a call gives status "error".

Workers are forked from a *zygote* (`_verify_worker.py`, started by path so it imports only math-verify):
the zygote pays math-verify's ~3 s import once per process and memory limit, and a replacement worker
then starts in milliseconds. The zygote's start-up is not charged to any call's timeout.

Thread-safe: a pool has `num_workers` slots; a call checks out a slot (forking its worker if the slot is
empty), so up to `num_workers` calls run in parallel and more callers wait. A killed worker leaves its
slot empty for the next caller, so a failed fork reaches one caller as an error and never strands the
others. `MathVerifierPool.close()` kills a pool's workers; `shutdown_verifiers()` (run at interpreter
exit) closes every pool and zygote. A worker also exits when its parent goes away (stdin closes;
parent-pid watchdogs in zygote and worker; a per-call CPU-time limit for a worker stuck in C code).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

WORKER_SCRIPT = Path(__file__).with_name("_verify_worker.py")

STATUSES = ("correct", "wrong", "extracted", "no_answer", "gold_unparseable", "timeout", "error")


@dataclass(frozen=True)
class VerifyResult:
    """One math-verify call. `pred`/`gold` are the matched LaTeX strings (None when nothing matched)."""

    status: str
    pred: str | None = None
    gold: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class VerifierStats:
    """Counters since the pool was created (updated under the pool's lock)."""

    calls: int = 0
    timeouts: int = 0
    errors: int = 0
    restarts: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})


class WorkerStartError(RuntimeError):
    """The math-verify zygote or a worker did not come up (math-verify missing, or start-up over the limit)."""


def _read_line(fd: int, buffer: bytearray, deadline: float) -> bytes | None:
    """Next line from `fd` (using/updating `buffer`); None at the deadline; EOFError when the writer is gone."""
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise EOFError("the other end closed")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


class _Zygote:
    """The process that imports math-verify once and forks workers on request."""

    def __init__(self, memory_mb: int, startup_timeout_s: float) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(WORKER_SCRIPT), "zygote", str(child_sock.fileno()), str(memory_mb),
             str(os.getpid())],
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None,  # start-up failures (math-verify missing) show on our stderr
            start_new_session=True,  # a Ctrl-C in the terminal reaches only the parent, which closes us
        )
        child_sock.close()
        self.sock = parent_sock
        self._buffer = bytearray()
        self._lock = threading.Lock()
        try:
            line = _read_line(self.sock.fileno(), self._buffer, time.monotonic() + startup_timeout_s)
        except EOFError:
            self.stop()
            raise WorkerStartError(
                f"the math-verify zygote exited at start-up (code {self.proc.returncode}); is math-verify "
                f"installed for {sys.executable}? Run: {sys.executable} -c 'import math_verify'"
            ) from None
        if line != b"ready":
            self.stop()
            raise WorkerStartError(f"the math-verify zygote did not start within {startup_timeout_s:.0f} s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork_worker(self, cpu_budget_s: int) -> "_Worker":
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        try:
            with self._lock:
                command = json.dumps({"cpu_budget_s": cpu_budget_s}).encode()
                socket.send_fds(self.sock, [command], [request_r, reply_w])
                line = _read_line(self.sock.fileno(), self._buffer, time.monotonic() + 30)
        except (OSError, EOFError) as err:
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            raise WorkerStartError(f"the math-verify zygote could not fork a worker: {err}") from None
        os.close(request_r)
        os.close(reply_w)
        if line is None:
            os.close(request_w)
            os.close(reply_r)
            raise WorkerStartError("the math-verify zygote did not answer a fork request within 30 s")
        return _Worker(json.loads(line)["pid"], request_w, reply_r)

    def stop(self) -> None:
        """Close the channel: the zygote kills its workers and exits (killed if it does not within 2 s)."""
        self.sock.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _Worker:
    """One forked worker: its pid and our ends of its two pipes."""

    def __init__(self, pid: int, request_fd: int, reply_fd: int) -> None:
        self.pid = pid
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self._buffer = bytearray()
        self.ready = False
        self.dead = False

    def readline(self, deadline: float) -> bytes | None:
        return _read_line(self.reply_fd, self._buffer, deadline)

    def alive_and_idle(self) -> bool:
        """An idle worker writes nothing: a readable reply pipe means it exited (EOF) or is out of step."""
        readable, _, _ = select.select([self.reply_fd], [], [], 0)
        return not readable and not self._buffer

    def send(self, request: dict) -> None:
        data = memoryview(json.dumps(request).encode() + b"\n")
        while data:  # the idle worker is blocked reading, so a long request drains as we write
            data = data[os.write(self.request_fd, data):]

    def kill(self) -> None:
        if self.dead:
            return
        self.dead = True
        try:
            os.kill(self.pid, signal.SIGKILL)  # the zygote reaps it
        except ProcessLookupError:
            pass
        for fd in (self.request_fd, self.reply_fd):
            try:
                os.close(fd)
            except OSError:
                pass


_ZYGOTES: dict[int, _Zygote] = {}
_ZYGOTES_LOCK = threading.Lock()


def _zygote(memory_mb: int, startup_timeout_s: float) -> _Zygote:
    """The zygote for this memory limit (started on first use; restarted if it died)."""
    with _ZYGOTES_LOCK:
        zygote = _ZYGOTES.get(memory_mb)
        if zygote is None or not zygote.alive():
            zygote = _ZYGOTES[memory_mb] = _Zygote(memory_mb, startup_timeout_s)
        return zygote


_LIVE_POOLS: "weakref.WeakSet[MathVerifierPool]" = weakref.WeakSet()


class MathVerifierPool:
    """`num_workers` math-verify processes; `verify(pred, gold)` returns within ~`timeout_s`."""

    def __init__(
        self,
        num_workers: int = 2,
        timeout_s: float = 5.0,
        memory_mb: int = 4096,
        startup_timeout_s: float = 120.0,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"MathVerifierPool: num_workers must be >= 1, got {num_workers}")
        if not timeout_s > 0:
            raise ValueError(f"MathVerifierPool: timeout_s must be > 0, got {timeout_s}")
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self.memory_mb = memory_mb
        self.startup_timeout_s = startup_timeout_s
        # Backstop for an orphaned worker: the kernel kills it after this many CPU seconds in one call.
        self.cpu_budget_s = int(math.ceil(self.timeout_s)) * 2 + 5
        self.stats = VerifierStats()
        self._lock = threading.Lock()
        # One entry per worker slot: an idle worker, or None for an empty slot the next caller fills.
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(num_workers):
            self._idle.put(None)
        self._workers: set[_Worker] = set()
        self._closed = False
        _LIVE_POOLS.add(self)
        weakref.finalize(self, _kill_workers, self._workers)

    def __enter__(self) -> "MathVerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _spawn(self) -> _Worker:
        worker = _zygote(self.memory_mb, self.startup_timeout_s).fork_worker(self.cpu_budget_s)
        with self._lock:
            self._workers.add(worker)
        return worker

    def _retire(self, worker: _Worker, restart: bool) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)
            if restart:
                self.stats.restarts += 1

    def _count(self, result: VerifyResult) -> VerifyResult:
        with self._lock:
            self.stats.calls += 1
            self.stats.by_status[result.status] += 1
            if result.status == "timeout":
                self.stats.timeouts += 1
            elif result.status == "error":
                self.stats.errors += 1
        return result

    def _checkout(self) -> _Worker:
        """An idle worker (forked now when the slot is empty); waits while every slot is busy."""
        while True:
            if self._closed:
                raise RuntimeError("MathVerifierPool is closed")
            try:
                worker = self._idle.get(timeout=0.5)
            except queue.Empty:
                continue
            if worker is not None:
                return worker
            try:
                return self._spawn()
            except BaseException:
                self._idle.put(None)  # give the slot back; the error goes to this caller only
                raise

    def verify(self, pred: str, gold: str | None) -> VerifyResult:
        """Grade response text `pred` against gold LaTeX `gold` (already `$`-wrapped by the caller).

        With `gold=None` only extract: status "extracted" when the response commits to an answer.
        An idle worker found dead (e.g. its zygote was killed) is replaced before the call is sent; a
        worker that dies while working on the call gives status "error"."""
        for _ in range(self.num_workers + 1):
            worker = self._checkout()
            if worker.ready and not worker.alive_and_idle():
                self._retire(worker, restart=not self._closed)
                self._idle.put(None)
                continue
            return self._call(worker, pred, gold)
        raise WorkerStartError("math-verify workers keep dying while idle")

    def _call(self, worker: _Worker, pred: str, gold: str | None) -> VerifyResult:
        keep = False
        try:
            if not worker.ready:
                if worker.readline(time.monotonic() + self.startup_timeout_s) != b'"ready"':
                    raise WorkerStartError("a math-verify worker did not report ready")
                worker.ready = True
            start = time.monotonic()
            try:
                worker.send({"pred": pred, "gold": gold})
                line = worker.readline(start + self.timeout_s)
            except (EOFError, OSError) as err:
                return self._count(VerifyResult("error", error=f"worker died: {err}", seconds=time.monotonic() - start))
            seconds = time.monotonic() - start
            if line is None:
                return self._count(VerifyResult("timeout", error=f"over {self.timeout_s:g} s", seconds=seconds))
            reply = json.loads(line)
            keep = True
            return self._count(VerifyResult(reply["status"], reply.get("pred"), reply.get("gold"), reply.get("error"), seconds))
        finally:
            if keep and not self._closed:
                self._idle.put(worker)
            else:  # timed out, died, or interrupted: kill it; the next caller forks a fresh one
                self._retire(worker, restart=not self._closed)
                self._idle.put(None)

    def close(self) -> None:
        """Kill every worker of this pool. Idempotent; calls in flight get status "error"."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
        for worker in workers:
            worker.kill()
        _LIVE_POOLS.discard(self)

    def live_pids(self) -> list[int]:
        """PIDs of this pool's workers (for tests and diagnostics)."""
        with self._lock:
            return [w.pid for w in self._workers if not w.dead]


def _kill_workers(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()


# One shared pool per (num_workers, timeout_s, memory_mb): rewards built with the same settings share it.
_SHARED: dict[tuple[int, float, int], MathVerifierPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(num_workers: int = 2, timeout_s: float = 5.0, memory_mb: int = 4096) -> MathVerifierPool:
    """The process-wide pool for these settings (created on first use, closed at exit)."""
    key = (num_workers, float(timeout_s), memory_mb)
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None or pool.closed:
            pool = _SHARED[key] = MathVerifierPool(num_workers, timeout_s, memory_mb)
        return pool


def zygote_pids() -> list[int]:
    """PIDs of the running zygotes (for tests and diagnostics)."""
    with _ZYGOTES_LOCK:
        return [z.proc.pid for z in _ZYGOTES.values() if z.alive()]


def shutdown_verifiers() -> None:
    """Close every pool and stop every zygote (registered with atexit)."""
    for pool in list(_LIVE_POOLS):
        pool.close()
    with _ZYGOTES_LOCK:
        zygotes = list(_ZYGOTES.values())
        _ZYGOTES.clear()
    for zygote in zygotes:
        zygote.stop()


atexit.register(shutdown_verifiers)
