"""Threaded streaming for frame sequences: ordered, bounded, cancellable.

`ordered_map` runs a function over a stream of items in a small thread pool and yields the results in
the input order, with at most `ahead` items in flight (submitted and not yet handed to the consumer),
so a sequence of thousands of frames holds a constant number of them in memory. Decoding (PIL/zlib),
numpy array work and onnxruntime all release the GIL, so threads overlap them on separate cores.

`batch_by` groups consecutive results into batches of at least `size` (counted by a weight, e.g. faces
per frame) so that inference batches form across frames.

The render pipeline (`reggan_plugin.pipeline.render_sequence`) chains them:
read + locate + align in readers -> batched inference in the calling thread -> paste + encode + write in
writers. Errors: the worker function decides which exceptions are per-item outcomes (it returns them);
anything it raises is a bug or a fatal condition and surfaces in the consumer as `WorkerError` naming the
item, after the remaining work is cancelled.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

POLL_SECONDS = 0.05  # how often a blocked consumer looks at the cancel event


class WorkerError(RuntimeError):
    """An unexpected exception in a worker, re-raised in the consumer with the item (frame) named."""

    def __init__(self, key: object, stage: str, error: BaseException) -> None:
        super().__init__(f"{key}: {stage} failed: {type(error).__name__}: {error}")
        self.key = key
        self.stage = stage
        self.error = error


@dataclass
class Ordered(Generic[R]):
    """One result of `ordered_map`: the item's position in the stream and what the function returned."""

    index: int
    value: R


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 2,
    ahead: int | Callable[[], int] = 4,
    cancel: threading.Event | None = None,
    name: str = "worker",
    key: Callable[[T], object] = lambda item: item,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Generator[Ordered[R], None, None]:
    """Yield `Ordered(index, fn(item))` for each item, in input order, computed by `workers` threads.

    At most `ahead` items are in flight: taken from `items` but not yet yielded (a callable is asked again before
    each item is taken: a bound that can tighten once the first results are known). `items` is consumed
    lazily in the caller's thread (it may itself be a generator doing work, e.g. inference).
    When `cancel` is set no further item is started, queued ones are dropped, and the generator returns
    once the running ones have finished (each is one frame: promptly). An exception raised by `fn`
    cancels the rest and is raised here as `WorkerError(key(item), name, exc)`, or unchanged when it is an
    instance of `passthrough` (typed errors that already name their file).
    """
    limit = ahead if callable(ahead) else (lambda: ahead)
    if workers < 1 or limit() < 1:
        raise ValueError(f"workers and ahead must be >= 1, got {workers} and {limit()}")
    source = iter(items)
    pending: deque[tuple[int, T, Future[R]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"reggan-{name}")
    index = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < max(1, limit()) and not _is_set(cancel):
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((index, item, pool.submit(fn, item)))
                index += 1
            if not pending or _is_set(cancel):
                return
            i, item, future = pending[0]
            while not future.done():
                wait([future], timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                if _is_set(cancel):
                    return
            pending.popleft()
            error = future.exception()
            if error is not None:
                if isinstance(error, (WorkerError, *passthrough)):
                    raise error
                raise WorkerError(key(item), name, error) from error
            yield Ordered(i, future.result())
    finally:
        for _, _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(source, "close", None)
        if close is not None:  # an upstream generator (e.g. another ordered_map) stops its own workers
            close()


def _is_set(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()


def batch_by(results: Iterable[T], size: int | Callable[[], int], weight: Callable[[T], int] = lambda _: 1
             ) -> Iterator[list[T]]:
    """Group consecutive results into lists whose total `weight` reaches `size` (the last may be smaller; a
    callable `size` is asked again after each item).

    Items of weight 0 (a frame with no face, or one that failed to load) ride along with their neighbours,
    so order is kept and nothing waits for a batch that never fills.
    """
    limit = size if callable(size) else (lambda: size)
    if limit() < 1:
        raise ValueError(f"batch size must be >= 1, got {limit()}")
    batch: list[T] = []
    total = 0
    for item in results:
        batch.append(item)
        total += weight(item)
        if total >= max(1, limit()):
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def flatten(batches: Iterable[Sequence[T]]) -> Iterator[T]:
    for batch in batches:
        yield from batch
