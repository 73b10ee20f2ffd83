"""One Genesys rate budget per OAuth client across processes; the host writer lock."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from tasks.locks import SharedTokenBucket, host_lock, lock_path


def test_two_buckets_on_one_file_share_one_budget(tmp_path) -> None:
    clock = [1000.0]
    slept: list[float] = []
    path = lock_path(tmp_path, "genesys-rate", "client-a")

    def bucket() -> SharedTokenBucket:
        return SharedTokenBucket(
            path,
            60,
            burst=2,
            clock=lambda: clock[0],
            sleep=lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)),
        )

    a, b = bucket(), bucket()
    a.acquire()
    b.acquire()  # the burst of 2 is shared: a and b took one each
    assert slept == []
    a.acquire()  # a third request waits for a token at 1 per second, whoever asks
    assert slept == [pytest.approx(1.0)]
    other = SharedTokenBucket(lock_path(tmp_path, "genesys-rate", "client-b"), 60, burst=2)
    other.acquire()  # another OAuth client has its own budget


def _hold(path, seconds, held) -> None:
    with host_lock(path):
        held.set()
        time.sleep(seconds)


def test_host_lock_waits_for_another_process_and_is_freed_when_it_dies(tmp_path) -> None:
    path = lock_path(tmp_path, "warehouse", "duckdb:///x")
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    holder = context.Process(target=_hold, args=(path, 60, held))
    holder.start()
    # wait for the holder to have the lock (a spawned interpreter can take seconds to start
    # on a loaded machine), not a fixed sleep
    assert held.wait(timeout=120), "the holder process never took the lock"
    with pytest.raises(TimeoutError), host_lock(path, timeout=0.5):
        pass
    holder.kill()  # SIGKILL: the kernel drops the lock
    holder.join()
    with host_lock(path, timeout=5) as waited:
        assert waited < 5
