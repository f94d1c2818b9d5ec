"""The gateway's failsafe: a rollout's weight falls back to 0 when nobody can watch it.

A real PostgreSQL store: the route state of a gateway replica follows a weight
a rollout controller set, falls back to the baseline when the controller goes
silent or when the database stops accepting connections, and returns when
they are back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from cutover.gateway.route_state import RouteState
from cutover.store import Store, open_store

pytestmark = pytest.mark.postgres

CAND = "openai:gpt-4.1-mini@http://127.0.0.1:18080/v1"
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def until(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def until_beating(
    postgres_url: str, rollout_id: str, predicate: Callable[[], bool], timeout: float = 10.0
) -> None:
    """``until``, with the rollout's controller beating meanwhile (every 0.2 s), as a live
    controller does.

    A single beat before the wait is not enough: the replica may read it only after the
    1 s failsafe time (its LISTEN connection reconnects once a second after an outage, and
    on a loaded machine that read came 1.05 s after the beat), and then the controller
    looks silent until its next beat, which never comes.
    """
    stop = asyncio.Event()
    with open_store(postgres_url) as store:

        async def beat() -> None:
            while not stop.is_set():
                await asyncio.to_thread(store.rollout_heartbeat, rollout_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)

        beating = asyncio.create_task(beat())
        try:
            await until(predicate, timeout)
        finally:
            stop.set()
            await beating


async def back_on_the_rollout(postgres_url: str, rollout_id: str, state: RouteState) -> None:
    """The controller beats again: the replica returns to the rollout's weight (50)."""
    await until_beating(
        postgres_url, rollout_id, lambda: state.weight("bot") == 50.0 and not state.failsafe
    )


async def weight_kept_through_an_outage(db_name: str, state: RouteState, weight: float) -> None:
    """A weight the failsafe must leave alone stays through a store outage."""
    with outage(db_name):
        await asyncio.sleep(1.5)
        assert state.weight("bot") == weight and not state.failsafe


def block_connections(db: str, blocked: bool) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(db), sql.SQL("false" if blocked else "true")
            )
        )
        if blocked:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (db,),
            )


@contextmanager
def outage(db: str) -> Iterator[None]:
    """The database refuses every connection (and drops the open ones) inside the block."""
    block_connections(db, True)
    try:
        yield
    finally:
        block_connections(db, False)


@asynccontextmanager
async def replica(postgres_url: str, poll_s: float) -> AsyncIterator[RouteState]:
    """A gateway replica's route state for route ``bot``, failsafe after 1 s."""
    state = RouteState(
        {"bot": (0.0, CAND)},
        lambda: Store.open(postgres_url),
        poll_s=poll_s,
        failsafe_after_s=1.0,
    )
    await state.start()
    try:
        yield state
    finally:
        await state.stop()


async def test_weight_falls_back_when_the_controller_or_the_store_goes_quiet(
    postgres_url: str,
) -> None:
    db_name = postgres_url.rsplit("/", 1)[1]
    async with replica(postgres_url, poll_s=0.1) as state:
        with open_store(postgres_url) as store:
            rollout = store.create_rollout("bot", {}, "h", owner=None, actor="test")
            store.set_gateway_route_weight("bot", 50.0, actor="rollout:abc", action="promote")
            store.rollout_heartbeat(rollout.id)
        await until_beating(postgres_url, rollout.id, lambda: state.weight("bot") == 50.0)

        # the controller stops beating: after the failsafe time, back to the baseline
        await until(lambda: state.weight("bot") == 0.0 and "bot" in state.failsafe)
        await back_on_the_rollout(postgres_url, rollout.id, state)  # it is back

        # the database refuses every connection: the replica cannot see anything
        with open_store(postgres_url) as store:
            store.rollout_heartbeat(rollout.id)  # the controller is fine; the store is not
        with outage(db_name):
            await until(lambda: state.weight("bot") == 0.0 and "bot" in state.failsafe)
        await back_on_the_rollout(postgres_url, rollout.id, state)

        # a finished rollout leaves its weight alone in an outage
        with open_store(postgres_url) as store:
            store.update_rollout(rollout.id, event="complete", actor="c", status="promoted")
            store.set_gateway_route_weight("bot", 100.0, actor="rollout:abc", action="promote")
        await until(lambda: state.weight("bot") == 100.0)
        await weight_kept_through_an_outage(db_name, state, 100.0)

        # a weight not set by a rollout is never touched by the failsafe
        with open_store(postgres_url) as store:
            store.set_gateway_route_weight("bot", 30.0, actor="alice", action="set_weight")
        await until(lambda: state.weight("bot") == 30.0)
        await weight_kept_through_an_outage(db_name, state, 30.0)


async def test_a_rollout_finished_just_before_an_outage_keeps_its_weight(
    postgres_url: str,
) -> None:
    """The one-route reload a NOTIFY triggers reads the rollout's status with the weight.

    Full reloads are made rare here (one per (re)connection), so the replica learns that
    a rollout started, and that it finished, only from the NOTIFY: an outage right after
    must hold a running rollout's route at the baseline, and leave a finished one alone.
    """
    db_name = postgres_url.rsplit("/", 1)[1]
    async with replica(postgres_url, poll_s=60.0) as state:
        with open_store(postgres_url) as store:
            rollout = store.create_rollout("bot", {}, "h", owner=None, actor="test")
            store.rollout_heartbeat(rollout.id)
            store.set_gateway_route_weight("bot", 50.0, actor="rollout:abc", action="promote")
        await until_beating(postgres_url, rollout.id, lambda: state.weight("bot") == 50.0)
        # the NOTIFY alone told the replica a running rollout set this weight
        with outage(db_name):
            await until(lambda: state.weight("bot") == 0.0 and "bot" in state.failsafe)
        # only the LISTEN reconnection (once a second) reads the store again here
        await back_on_the_rollout(postgres_url, rollout.id, state)

        with open_store(postgres_url) as store:
            store.update_rollout(rollout.id, event="complete", actor="c", status="promoted")
            store.set_gateway_route_weight("bot", 100.0, actor="rollout:abc", action="promote")
        await until(lambda: state.weight("bot") == 100.0)
        await weight_kept_through_an_outage(db_name, state, 100.0)


async def test_a_gateway_host_clock_ahead_does_not_silence_a_live_controller(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat is written and judged on the database's clock: a gateway host whose
    clock runs an hour ahead still hears a controller that beat a moment ago."""
    import cutover.gateway.route_state as route_state_module
    from cutover.store._schema import utcnow

    async with replica(postgres_url, poll_s=0.1) as state:
        with open_store(postgres_url) as store:
            rollout = store.create_rollout("bot", {}, "h", owner=None, actor="test")
            store.rollout_heartbeat(rollout.id)
            store.set_gateway_route_weight("bot", 50.0, actor="rollout:abc", action="promote")
        await until_beating(postgres_url, rollout.id, lambda: state.weight("bot") == 50.0)
        # from here the gateway's clock reads an hour ahead of the controller's
        monkeypatch.setattr(route_state_module, "utcnow", lambda: utcnow() + timedelta(hours=1))
        with open_store(postgres_url) as store:  # opened once: each beat is one quick write
            for _ in range(5):
                await asyncio.to_thread(store.rollout_heartbeat, rollout.id)
                await asyncio.sleep(0.3)
                assert state.weight("bot") == 50.0 and not state.failsafe
        with open_store(postgres_url) as store:
            assert abs((store.database_now() - utcnow()).total_seconds()) < 5
