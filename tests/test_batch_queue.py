"""BatchQueue: every item out once, in order, in batches; close() drains and ends."""

from __future__ import annotations

import threading

from thunderdome.core.batch_queue import BatchQueue


def test_items_put_from_another_thread_come_out_in_order_in_batches():
    queue: BatchQueue[int] = BatchQueue(gather_s=0.01)
    batches: list[list[int]] = []
    consumer = threading.Thread(target=lambda: batches.extend(queue.batches()))
    consumer.start()
    for i in range(5000):
        queue.put(i)
    queue.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert [i for batch in batches for i in batch] == list(range(5000))
    assert len(batches) < 5000  # gathered, not one batch per item
    assert all(batches)


def test_a_sleeping_consumer_is_woken_by_put_and_close_ends_an_empty_queue():
    queue: BatchQueue[str] = BatchQueue(gather_s=0.0)
    got: list[list[str]] = []
    first = threading.Event()

    def consume() -> None:
        for batch in queue.batches():
            got.append(batch)
            first.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    queue.put("a")
    assert first.wait(10), "the consumer was not woken"
    queue.close()
    consumer.join(10)
    assert not consumer.is_alive() and got == [["a"]]
