"""The hard per-call timeout of math-verify: adversarial LaTeX returns in time, scores 0, and is counted.

ADVERSARIAL is a power tower: sympy evaluates 9^(9^(9^9)) eagerly while comparing it with the gold, which
does not finish (measured: still running at a 20 s timeout; 9^9^9 alone has ~370 million digits).
math-verify's own signal-based timeout cannot stop it from a non-main thread, and nothing in Python can
interrupt the C big-integer power, so only killing the worker process works.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lmmr1.data.records import Record
from lmmr1.rewards import MathVerifierPool, RewardConfig, RewardResult, get_reward, score_batch, shared_pool, summarize
from lmmr1.rewards.library import MathGrader
from lmmr1.rewards.verifier import zygote_pids

ADVERSARIAL = r"\boxed{9^{9^{9^{9}}}}"
TIMEOUT_S = 1.0


def rec(answer: str) -> Record:
    return Record(messages=[{"role": "user", "content": "q"}], answer=answer)


def F(inner: str) -> str:
    return f"<think>r</think><answer>{inner}</answer>"


def assert_all_gone(pids: list[int], within_s: float = 5.0) -> None:
    """Every pid is killed and reaped (workers are reaped by their zygote, asynchronously)."""
    deadline = time.monotonic() + within_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _exists(pid)]
        time.sleep(0.02)
    assert alive == [], f"processes still running: {alive}"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_adversarial_input_returns_within_timeout_scores_zero_and_pool_recovers():
    with MathVerifierPool(num_workers=1, timeout_s=TIMEOUT_S) as pool:
        grader = MathGrader(RewardConfig(verify_timeout_s=TIMEOUT_S), detect_uncertainty=False, pool=pool)
        assert grader(F(r"\boxed{3}"), rec("3")).outcome == "correct"  # warm-up: start-up is not charged
        first_pids = pool.live_pids()

        start = time.monotonic()
        result = grader(F(ADVERSARIAL), rec("3"))
        elapsed = time.monotonic() - start

        assert result == RewardResult(0.0, {"accuracy": 0.0}, "invalid", timed_out=True)
        assert TIMEOUT_S <= elapsed < TIMEOUT_S + 1.0
        assert (pool.stats.timeouts, pool.stats.restarts) == (1, 1)
        assert_all_gone(first_pids)  # the stuck worker was killed, not abandoned
        # The replacement worker grades normally.
        assert grader(F(r"\boxed{4}"), rec("3")).outcome == "wrong"
        pids = pool.live_pids()
    assert pool.live_pids() == []
    assert_all_gone(pids)


def test_pool_recovers_when_its_zygote_is_killed():
    from lmmr1.rewards import verifier

    with MathVerifierPool(num_workers=2, timeout_s=5.0) as pool:
        assert pool.verify(r"\boxed{1}", "$1$").status == "correct"
        zygote = verifier._ZYGOTES[pool.memory_mb].proc  # shared with other pools: they recover the same way
        workers = pool.live_pids()
        zygote.kill()
        zygote.wait()  # reap it: it is our child
        assert_all_gone(workers)  # its worker noticed (parent-pid watchdog) and exited
        # The idle worker is found dead before the call is sent: replaced, no error for this call.
        assert pool.verify(r"\boxed{2}", "$2$").status == "correct"
        assert pool.stats.errors == 0 and verifier._ZYGOTES[pool.memory_mb].proc.pid != zygote.pid


def test_verification_works_off_the_main_thread():
    # OpenRLHF calls reward_func via asyncio.to_thread; math-verify's signal timeouts would raise there.
    reward = get_reward("lmm_r1")
    with ThreadPoolExecutor(max_workers=2) as executor:
        results = list(executor.map(reward, [F(r"\boxed{\frac{1}{2}}"), F(r"\boxed{2}")], [rec("0.5"), rec("3")]))
    assert [(r.total, r.outcome) for r in results] == [(1.5, "correct"), (0.5, "wrong")]


def test_batch_of_1000_with_adversarial_inputs_finishes_and_reports_their_count():
    config = RewardConfig(verify_timeout_s=TIMEOUT_S, verify_workers=2)
    pool = shared_pool(config.verify_workers, config.verify_timeout_s, config.verify_memory_mb)
    reward = get_reward("lmm_r1", config)  # uses `pool` (same settings)
    adversarial_at = {97, 311, 503, 709, 997}
    responses, records = [], []
    for i in range(1000):
        gold = i % 10
        if i in adversarial_at:
            responses.append(F(ADVERSARIAL))
        else:
            responses.append(F(rf"\boxed{{{gold if i % 3 else gold + 1}}}"))  # every third one is wrong
        records.append(rec(str(gold)))

    start = time.monotonic()
    try:
        results = score_batch(reward, responses, records, max_threads=4)
        elapsed = time.monotonic() - start
        pids = pool.live_pids()
    finally:
        pool.close()
    assert_all_gone(pids)

    # 1000 = 5 adversarial + 995 normal; normal i with i % 3 == 0 are wrong. Of 0..999, 334 are multiples
    # of 3; of the adversarial indices none is (97, 311, 503, 709, 997), so 334 wrong and 995 - 334 = 661 correct.
    summary = summarize(results)
    assert summary["reward/timeouts"] == 5.0
    assert [i for i, r in enumerate(results) if r.timed_out] == sorted(adversarial_at)
    assert all(results[i].outcome == "invalid" and results[i].total == 0.5 for i in adversarial_at)  # format only
    assert sum(r.outcome == "correct" for r in results) == 661
    assert sum(r.outcome == "wrong" for r in results) == 334
    # mean = (661 x 1.5 + 334 x 0.5 + 5 x 0.5) / 1000 = (991.5 + 167 + 2.5) / 1000 = 1.161
    assert summary["reward/mean"] == pytest.approx(1.161)
    assert pool.stats.timeouts == 5
    assert elapsed < 60.0, f"1000 rewards took {elapsed:.1f} s"


CHILD_SCRIPT = r"""
import os, sys, threading, time
from lmmr1.rewards.verifier import MathVerifierPool, zygote_pids
pool = MathVerifierPool(num_workers=1, timeout_s=60.0)
assert pool.verify(r"\boxed{1}", "$1$").status == "correct"
print(" ".join(map(str, zygote_pids() + pool.live_pids())), flush=True)
threading.Thread(target=pool.verify, args=(sys.argv[2], "$1$"), daemon=True).start()
time.sleep(0.5)  # the worker is now deep in the power tower
if sys.argv[1] == "sigkill":
    os.kill(os.getpid(), 9)
# "exit": a normal interpreter exit with the call still running; atexit must stop everything
"""


def test_no_process_outlives_its_parent():
    # The parent ends while a worker is stuck in sympy (60 s timeout, far from reached). On a normal exit
    # atexit stops the zygote and the workers; on SIGKILL the zygote's parent-pid watchdog (0.5 s period)
    # kills the workers and exits. Both parents run at once.
    import subprocess
    import sys

    children = {how: subprocess.Popen([sys.executable, "-c", CHILD_SCRIPT, how, ADVERSARIAL], text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for how in ("exit", "sigkill")}
    for how, child in children.items():
        out, err = child.communicate(timeout=60)
        assert child.returncode == (0 if how == "exit" else -9), err
        pids = [int(p) for p in out.split()]
        assert len(pids) == 2, err  # the zygote and the one worker
        assert_all_gone(pids, within_s=5.0)
