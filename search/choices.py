"""A request's ``n`` answers (its choices): how each is seeded, and how the events of ``n``
searches running at once come out as one stream.

Searches for one request run concurrently rather than one after another: their engine calls
then reach the engine together and share its batch, so ``n`` answers take about the time of
one on an engine with room in its batch, and a deadline holds for all of them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncGenerator, Sequence

from search.events import SearchEvent


def choice_seed(seed: int | None, choice: int) -> int | None:
    """The seed of answer ``choice``: the request's own for choice 0 (so one answer is what it
    was before ``n`` existed), a different one derived from it for the others, so answers
    differ yet a seeded request is reproducible; no seed stays no seed."""
    if seed is None or choice == 0:
        return seed
    return random.Random(f"{seed}/{choice}").getrandbits(62)


async def interleaved(
    streams: Sequence[AsyncGenerator[SearchEvent, None]],
) -> AsyncGenerator[SearchEvent, None]:
    """The events of ``streams`` as they come, stream ``i``'s tagged ``choice=i``.

    Each stream runs in a task of its own.  When this generator is closed (the client left) or
    one stream fails, every task is cancelled and awaited, each closing its search, which
    cancels its engine call; the failure is then raised here.
    """
    queue: asyncio.Queue[SearchEvent | BaseException | None] = asyncio.Queue()

    async def pump(choice: int, stream: AsyncGenerator[SearchEvent, None]) -> None:
        try:
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    queue.put_nowait(dataclasses.replace(event, choice=choice))
        except Exception as exc:  # handed to the consumer, which cancels the rest
            queue.put_nowait(exc)
        else:
            queue.put_nowait(None)

    tasks = [asyncio.ensure_future(pump(i, stream)) for i, stream in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
