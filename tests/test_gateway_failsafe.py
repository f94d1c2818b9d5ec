"""The gateway's failsafe: a rollout's weight falls back to 0 when nobody can watch it.

A real PostgreSQL store: the route state of a gateway replica follows a weight
a rollout controller set, falls back to the baseline when the controller goes
silent or when the database stops accepting connections, and returns when
they are back.
"""

from __future__ import annotations

import asyncio

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


async def test_weight_falls_back_when_the_controller_or_the_store_goes_quiet(
    postgres_url: str,
) -> None:
    db_name = postgres_url.rsplit("/", 1)[1]
    state = RouteState(
        {"bot": (0.0, CAND)},
        lambda: Store.open(postgres_url),
        poll_s=0.1,
        failsafe_after_s=1.0,
    )
    await state.start()
    try:
        with open_store(postgres_url) as store:
            rollout = store.create_rollout("bot", {}, "h", owner=None, actor="test")
            store.set_gateway_route_weight("bot", 50.0, actor="rollout:abc", action="promote")
            store.rollout_heartbeat(rollout.id)
        await until(lambda: state.weight("bot") == 50.0)

        # the controller stops beating: after the failsafe time, back to the baseline
        await until(lambda: state.weight("bot") == 0.0 and "bot" in state.failsafe)
        with open_store(postgres_url) as store:
            store.rollout_heartbeat(rollout.id)  # it is back
        await until(lambda: state.weight("bot") == 50.0 and not state.failsafe)

        # the database refuses every connection: the replica cannot see anything
        with open_store(postgres_url) as store:
            store.rollout_heartbeat(rollout.id)  # the controller is fine; the store is not
        block_connections(db_name, True)
        try:
            await until(lambda: state.weight("bot") == 0.0 and "bot" in state.failsafe)
        finally:
            block_connections(db_name, False)
        with open_store(postgres_url) as store:
            store.rollout_heartbeat(rollout.id)
        await until(lambda: state.weight("bot") == 50.0 and not state.failsafe)

        # a finished rollout leaves its weight alone in an outage
        with open_store(postgres_url) as store:
            store.update_rollout(rollout.id, event="complete", actor="c", status="promoted")
            store.set_gateway_route_weight("bot", 100.0, actor="rollout:abc", action="promote")
        await until(lambda: state.weight("bot") == 100.0)
        block_connections(db_name, True)
        try:
            await asyncio.sleep(1.5)
            assert state.weight("bot") == 100.0 and not state.failsafe
        finally:
            block_connections(db_name, False)

        # a weight not set by a rollout is never touched by the failsafe
        with open_store(postgres_url) as store:
            store.set_gateway_route_weight("bot", 30.0, actor="alice", action="set_weight")
        await until(lambda: state.weight("bot") == 30.0)
        block_connections(db_name, True)
        try:
            await asyncio.sleep(1.5)
            assert state.weight("bot") == 30.0 and not state.failsafe
        finally:
            block_connections(db_name, False)
    finally:
        await state.stop()
