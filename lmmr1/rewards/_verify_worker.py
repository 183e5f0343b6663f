"""math-verify worker processes (run by path by `lmmr1.rewards.verifier`; never imported).

One *zygote* process imports math-verify once (about 3 s) and then forks a *worker* per request of the
parent, so replacing a killed worker costs milliseconds. Both run by path, without importing lmmr1.

Zygote control channel: a Unix socket (fd given on the command line). The parent sends one line
`{"cpu_budget_s": int}` together with two file descriptors (SCM_RIGHTS): the read end of the request pipe
and the write end of the reply pipe. The zygote forks; the child makes them its stdin/stdout and serves;
the zygote answers `{"pid": int}`. The zygote reaps its children (SIGCHLD) and, when the parent dies or
closes the socket, kills them all and exits.

Worker protocol, one JSON object per line:
    parent -> worker   {"pred": str, "gold": str | null}   (null: only extract an answer from pred)
    worker -> parent   first "ready"; then per request {"status": ..., "pred": str|None, "gold": str|None}
status: "correct" | "wrong" | "extracted" (gold null, an answer was found) | "no_answer" (nothing extracted
        from the response) | "gold_unparseable" | "error" (an exception, MemoryError included).

math-verify's own signal-based timeouts are switched off (`parsing_timeout=None`, `timeout_seconds=None`):
the parent enforces one hard wall-clock timeout per call by killing the worker. Backstops for a worker
whose parent is gone: a parent-pid watchdog thread, stdin EOF, a per-call CPU-time limit (RLIMIT_CPU: the
kernel kills a worker stuck in C code) and an address-space limit (RLIMIT_AS: runaway big-integer
arithmetic raises MemoryError).

The extraction settings are LMM-R1's (TideDra/lmm-r1 `openrlhf/models/remote_rm/math_verifier.py`, HEAD
after commit 4d07235 "fix math_verify"): gold parsed with the default LatexExtractionConfig, first match;
the response parsed whole with boxed-first priority (boxed_match_priority=0), no anchor-free extraction,
NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True).
"""

import os
import sys

# Run by path, sys.path[0] is this folder: drop it so no sibling module can shadow the standard library.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import json  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from functools import lru_cache  # noqa: E402


def _limit_memory(memory_mb: int) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limit_cpu_for_next_call(budget_s: int) -> None:
    """Allow `budget_s` more CPU seconds from now; past them the kernel sends SIGXCPU (terminate)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime) + 1 + budget_s
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY and hard < soft:
        soft = hard
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _watch_parent(parent_pid: int, on_orphan) -> None:
    while True:
        if os.getppid() != parent_pid:
            on_orphan()
            os._exit(3)
        time.sleep(0.5)


def make_grader():
    """Import math-verify and return grade(pred, gold|None) -> reply dict."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)

    gold_config = [LatexExtractionConfig()]
    pred_config = [
        LatexExtractionConfig(
            normalization_config=NormalizationConfig(
                nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
            ),
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ]

    @lru_cache(maxsize=4096)
    def parse_gold(gold: str):
        return tuple(parse(gold, extraction_mode="first_match", extraction_config=gold_config, parsing_timeout=None))

    def parse_pred(pred: str):
        return parse(pred, extraction_config=pred_config, extraction_mode="first_match", parsing_timeout=None)

    def raw(parsed):
        # parse() returns [sympy_object, matched_string]; never str() a sympy object (it can hang).
        return next((p for p in reversed(parsed) if isinstance(p, str)), None)

    def grade(pred: str, gold):
        if gold is None:  # extraction only: does the response commit to an answer?
            pred_parsed = parse_pred(pred)
            return {"status": "extracted" if pred_parsed else "no_answer", "pred": raw(pred_parsed), "gold": None}
        gold_parsed = list(parse_gold(gold))
        if not gold_parsed:
            return {"status": "gold_unparseable", "pred": None, "gold": None}
        pred_parsed = parse_pred(pred)
        if not pred_parsed:
            return {"status": "no_answer", "pred": None, "gold": raw(gold_parsed)}
        # verify(gold, target): math-verify's documented order (it is not symmetric). Comparison errors
        # inside verify count as "no match" (its default), as at LMM-R1's HEAD.
        ok = verify(gold_parsed, pred_parsed, timeout_seconds=None)
        return {"status": "correct" if ok else "wrong", "pred": raw(pred_parsed), "gold": raw(gold_parsed)}

    return grade


def serve(grade, cpu_budget_s: int) -> None:
    """Worker loop on stdin/stdout."""
    out = sys.stdout.buffer
    out.write(b'"ready"\n')
    out.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if cpu_budget_s > 0:
                _limit_cpu_for_next_call(cpu_budget_s)
            gold = request["gold"]
            reply = grade(str(request["pred"]), None if gold is None else str(gold))
        except MemoryError:
            reply = {"status": "error", "pred": None, "gold": None, "error": "MemoryError"}
        except Exception as err:  # noqa: BLE001 - any failure of one call is that call's result
            reply = {"status": "error", "pred": None, "gold": None, "error": f"{type(err).__name__}: {err}"[:500]}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


def zygote(sock_fd: int, memory_mb: int, parent_pid: int) -> None:
    sock = socket.socket(fileno=sock_fd)
    _limit_memory(memory_mb)
    grade = make_grader()
    children: set = set()

    def reap(signum=None, frame=None) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)

    def kill_children() -> None:
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid, kill_children), daemon=True).start()
    sock.sendall(b"ready\n")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 4096, 2)
        except OSError:
            break
        if not message:
            break  # the parent closed the channel
        command = json.loads(message)
        # Block SIGCHLD until the pid is recorded, so a child that dies at once is not reaped before it is added.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                sock.close()
                os.dup2(fds[0], 0)
                os.dup2(fds[1], 1)
                for fd in fds:
                    os.close(fd)
                zygote_pid = os.getppid()
                threading.Thread(target=_watch_parent, args=(zygote_pid, lambda: None), daemon=True).start()
                serve(grade, int(command.get("cpu_budget_s", 0)))
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        children.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    kill_children()


if __name__ == "__main__":
    # python _verify_worker.py zygote SOCK_FD MEMORY_MB PARENT_PID
    if len(sys.argv) != 5 or sys.argv[1] != "zygote":
        sys.exit("usage: _verify_worker.py zygote SOCK_FD MEMORY_MB PARENT_PID")
    zygote(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
