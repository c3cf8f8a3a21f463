"""An iterator run on a thread of its own, a few items ahead of its consumer (reads that wait on
PostgreSQL overlap the work on what was read before)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """Runs an iterator on a thread of its own, at most :attr:`AHEAD` items ahead of its consumer.

    The ledger's verifier reads two: the records, batch by batch, and the stored nodes each batch
    completes; an evidence export reads the records and, for each batch, the nodes its proofs
    need. PostgreSQL and the reading threads work while the consumer (compiled code, zlib or
    file writes: the GIL released) handles the batch before. Close it when done (also early):
    that stops the thread and closes the iterator, so a connection it holds goes back.
    """

    AHEAD = 2

    def __init__(self, items: Iterator[T], name: str) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[T] | Exception | None] = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: tuple[T] | Exception | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item,)):
                    break
            else:
                self._put(None)
        except Exception as exc:  # handed to the consumer, which raises it
            self._put(exc)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while (item := self._queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item[0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
