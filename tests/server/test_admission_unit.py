"""Admission on its own (no server): slots, the queue behind them, 429 past it, 503 once
closed, and every slot given back however a wait ends."""

from __future__ import annotations

import asyncio

import pytest

from server.admission import Admission, ShuttingDown, TooBusy
from server.engines.stats import EngineStats
from server.metrics import Metrics
from tests.waiting import PATIENCE, until


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def queued(metrics: Metrics) -> float:
    return sample(metrics, "ponder_requests_queued")


async def acquired(admission: Admission) -> None:
    """Acquire, failing the test (instead of hanging it) if no slot ever comes."""
    await asyncio.wait_for(admission.acquire(), PATIENCE)


def test_past_the_slots_requests_wait_and_past_the_queue_get_429() -> None:
    metrics = Metrics(EngineStats())
    admission = Admission(running=1, queued=1, metrics=metrics)

    async def scenario() -> None:
        await acquired(admission)  # the one slot
        waiting = asyncio.create_task(acquired(admission))
        await until(lambda: queued(metrics) == 1, "the second request to wait")
        with pytest.raises(TooBusy) as busy:
            await admission.acquire()
        assert (busy.value.status_code, busy.value.code) == (429, "server_busy")
        assert busy.value.headers == {"Retry-After": "1"}
        assert not waiting.done()
        admission.release()  # the slot passes to the waiting request
        await waiting
        assert queued(metrics) == 0
        admission.release()

    asyncio.run(scenario())
    assert sample(metrics, "ponder_rejected_total", reason="queue_full") == 1
    assert sample(metrics, "ponder_queue_seconds_count") == 2


def test_closing_refuses_new_and_waiting_requests_with_503() -> None:
    metrics = Metrics(EngineStats())
    admission = Admission(running=1, queued=2, metrics=metrics)

    async def scenario() -> None:
        await acquired(admission)
        waiting = asyncio.create_task(admission.acquire())
        await until(lambda: queued(metrics) == 1, "a waiting request")
        admission.close()
        with pytest.raises(ShuttingDown) as refused:
            await waiting
        assert (refused.value.status_code, refused.value.code) == (503, "shutting_down")
        assert refused.value.error_type == "service_unavailable_error"
        with pytest.raises(ShuttingDown):
            await admission.acquire()
        admission.release()  # the running search ends as usual

    asyncio.run(scenario())
    assert sample(metrics, "ponder_rejected_total", reason="shutting_down") == 2
    assert queued(metrics) == 0


@pytest.mark.parametrize("slot_freed_first", [False, True])
def test_a_request_that_leaves_the_queue_keeps_no_place_and_loses_none(
    slot_freed_first: bool,
) -> None:
    """A client that goes while waiting (its wait cancelled), even in the instant a slot is
    freed for it, leaves the slots and queue places as they were."""
    metrics = Metrics(EngineStats())
    admission = Admission(running=1, queued=1, metrics=metrics)

    async def scenario() -> None:
        await acquired(admission)
        leaving = asyncio.create_task(admission.acquire())
        await until(lambda: queued(metrics) == 1, "a waiting request")
        if slot_freed_first:
            admission.release()  # the slot is handed over, but the waiter has not run yet
        leaving.cancel()
        await asyncio.gather(leaving, return_exceptions=True)
        assert leaving.cancelled()
        if not slot_freed_first:
            admission.release()
        await acquired(admission)  # the slot came back
        waiting = asyncio.create_task(acquired(admission))  # and the queue place: no 429
        await until(lambda: queued(metrics) == 1, "the next request to wait")
        admission.release()
        await waiting
        admission.release()

    asyncio.run(scenario())
    assert sample(metrics, "ponder_rejected_total", reason="queue_full") == 0


def test_a_request_of_n_searches_takes_n_slots_and_waits_its_turn() -> None:
    metrics = Metrics(EngineStats())
    admission = Admission(running=3, queued=4, metrics=metrics)
    assert (admission.slots_for(2), admission.slots_for(100)) == (2, 3)

    async def scenario() -> None:
        await acquired(admission)  # one search runs: two slots are free
        wide = asyncio.create_task(asyncio.wait_for(admission.acquire(3), PATIENCE))
        await until(lambda: queued(metrics) == 1, "the wide request to wait")
        narrow = asyncio.create_task(acquired(admission))  # fits, but arrives after it
        await until(lambda: queued(metrics) == 2, "the narrow request to wait behind it")
        admission.release()
        await wide  # all three slots, before the narrow one
        assert not narrow.done()
        admission.release(3)
        await narrow
        admission.release()

    asyncio.run(scenario())
    assert queued(metrics) == 0


def test_a_request_is_alone_only_while_nothing_else_runs_or_waits() -> None:
    """What ``--adaptive-parallel`` reads once a request holds its slots: of two requests
    that arrive together, neither is alone, whichever is admitted first."""
    metrics = Metrics(EngineStats())
    admission = Admission(running=2, queued=2, metrics=metrics)

    async def scenario() -> None:
        await acquired(admission)
        assert admission.alone
        await acquired(admission)  # a second one, beside it
        assert not admission.alone
        admission.release()
        assert admission.alone
        admission.release()
        assert not admission.alone  # nothing admitted: nobody asks

    asyncio.run(scenario())


def test_a_drain_closes_at_once_and_interrupts_the_running_searches_once_its_time_is_up() -> None:
    metrics = Metrics(EngineStats())
    admission = Admission(running=1, queued=1, metrics=metrics)

    async def scenario() -> None:
        await acquired(admission)
        admission.drain(0.05)
        with pytest.raises(ShuttingDown):
            await admission.acquire()
        assert not admission.interrupt.is_set()  # the running search goes on, for now
        await asyncio.wait_for(admission.interrupt.wait(), PATIENCE)
        admission.release()

    asyncio.run(scenario())
