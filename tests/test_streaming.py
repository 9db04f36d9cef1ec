"""The streaming machinery: order, bounded look-ahead, errors naming the frame, cancel, batching."""
from __future__ import annotations

import random
import threading
import time

import pytest

from reggan_plugin.streaming import WorkerError, batch_by, flatten, ordered_map


def _jitter(seed: int) -> float:
    return random.Random(seed).uniform(0.0, 0.004)


def test_order_is_preserved_although_workers_finish_out_of_order():
    finished: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        time.sleep(0.006 if i % 3 == 0 else _jitter(i))  # every third item is the slowest
        with lock:
            finished.append(i)
        return i * i

    results = list(ordered_map(work, range(40), workers=3, ahead=6))
    assert [r.index for r in results] == list(range(40))
    assert [r.value for r in results] == [i * i for i in range(40)]
    assert finished != sorted(finished)  # the workers really did overlap and finish out of order


def test_look_ahead_is_bounded():
    started = 0
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal started
        with lock:
            started += 1
        return i

    def source():
        yield from range(100)

    consumed = 0
    for result in ordered_map(work, source(), workers=2, ahead=5):
        time.sleep(0.001)  # a slow consumer: workers could run far ahead if nothing bounded them
        with lock:
            assert started <= consumed + 5, (started, consumed)
        consumed += 1
    assert consumed == started == 100


def test_items_are_pulled_lazily_from_the_source():
    pulled = []

    def source():
        for i in range(1000):
            pulled.append(i)
            yield i

    stream = ordered_map(lambda i: i, source(), workers=2, ahead=3)
    first = [next(stream).value for _ in range(4)]
    assert first == [0, 1, 2, 3]
    assert len(pulled) <= 4 + 3
    stream.close()


def test_worker_exception_surfaces_with_the_frame_named():
    def work(name: str) -> str:
        if name == "frame_0007.png":
            raise ZeroDivisionError("boom")
        return name

    names = [f"frame_{i:04d}.png" for i in range(20)]
    got = []
    with pytest.raises(WorkerError) as info:
        for result in ordered_map(work, names, workers=2, ahead=4, name="read"):
            got.append(result.value)
    assert got == names[:7]  # everything before the bad frame was delivered, in order
    assert "frame_0007.png" in str(info.value) and "read" in str(info.value) and "boom" in str(info.value)
    assert isinstance(info.value.error, ZeroDivisionError) and info.value.key == "frame_0007.png"


def test_cancel_stops_promptly_and_starts_nothing_more():
    cancel = threading.Event()
    started = []

    def work(i: int) -> int:
        started.append(i)
        time.sleep(0.02)
        return i

    delivered = []
    t0 = time.perf_counter()
    for result in ordered_map(work, range(10_000), workers=2, ahead=4, cancel=cancel):
        delivered.append(result.value)
        if len(delivered) == 3:
            cancel.set()
    elapsed = time.perf_counter() - t0
    assert delivered == [0, 1, 2]
    assert len(started) <= 3 + 4  # only what was already in flight
    assert elapsed < 1.0


def test_cancel_while_waiting_for_a_slow_item():
    cancel = threading.Event()
    release = threading.Event()

    def work(i: int) -> int:
        if i == 1:
            release.wait(5)  # stuck until the test lets it go
        return i

    timer = threading.Timer(0.1, cancel.set)
    timer.start()
    t0 = time.perf_counter()
    stream = ordered_map(work, range(10), workers=2, ahead=2, cancel=cancel)
    assert next(stream).value == 0
    remaining = []
    waiter = threading.Thread(target=lambda: remaining.extend(r.value for r in stream))
    waiter.start()
    waiter.join(0.5)  # the consumer returns from the wait on cancel; only the stuck worker remains
    release.set()
    waiter.join(2)
    assert not waiter.is_alive() and remaining == []
    assert time.perf_counter() - t0 < 2.0


def test_chained_stages_equal_the_sequential_result():
    def load(i: int) -> list[int]:
        time.sleep(_jitter(i))
        return [i] * (i % 3)  # 0, 1 or 2 "faces" per frame

    def infer(batches):
        for batch in batches:
            for item in batch:
                yield [v * 10 for v in item.value]

    def save(faces: list[int]) -> int:
        time.sleep(_jitter(len(faces)))
        return sum(faces)

    loaded = ordered_map(load, range(60), workers=2, ahead=4, name="read")
    batched = batch_by(loaded, 4, weight=lambda r: len(r.value))
    saved = [r.value for r in ordered_map(save, infer(batched), workers=2, ahead=4, name="write")]
    assert saved == [sum(v * 10 for v in load(i)) for i in range(60)]


def test_batch_by_counts_weights_across_items():
    batches = list(batch_by([2, 0, 1, 3, 0, 0, 1], 3, weight=lambda n: n))
    assert batches == [[2, 0, 1], [3], [0, 0, 1]]
    assert list(flatten(batches)) == [2, 0, 1, 3, 0, 0, 1]
    with pytest.raises(ValueError):
        list(batch_by([1], 0))
