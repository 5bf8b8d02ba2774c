"""The RPC policy covers every generated method; tokens are stored hashed and checked against a
cache that follows the database (real SQLite file, real migrations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqd.auth import policy
from jobqd.auth.identity import Identity, Role
from jobqd.auth.tokens import TokenBook, TokenStore, digest
from jobqd.domain.errors import Conflict, InvalidArgument, NotFound
from jobqd.store.database import open_db
from tests.integration.security.support import jobq_services


def test_every_generated_rpc_has_an_explicit_rule() -> None:
    services = {s.full_name: {m.name for m in s.methods} for s in jobq_services()}
    ruled = {name: set(methods) for name, methods in policy.RULES.items()}
    assert ruled == services, "add a rule to jobqd.auth.policy.RULES for each new RPC (and drop stale ones)"


def test_unknown_methods_fail_closed_and_health_is_open() -> None:
    rule = policy.rule_for("/jobq.v1.JobService/SomethingNew")
    assert rule.roles == {Role.ADMIN} and rule.writes
    assert policy.is_open("/grpc.health.v1.Health/Check")
    assert policy.is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not policy.is_open("/jobq.v1.JobService/ListJobs")
    assert Role.NODE not in policy.rule_for("/jobq.v1.JobService/SubmitJob").roles
    assert policy.rule_for("/jobq.v1.NodeService/Connect").roles == {Role.NODE}


async def test_tokens_are_stored_hashed_listed_and_revoked(tmp_path: Path) -> None:
    conn = await open_db(tmp_path)
    try:
        store = TokenStore(conn)
        token = await store.create(name="alice", role=Role.CLIENT, now=1000.0)
        assert token.startswith("jobq_") and len(token) == 48
        async with conn.execute("SELECT hash FROM tokens") as cur:
            [(stored,)] = await cur.fetchall()
        assert stored == digest(token).hex()
        with pytest.raises(Conflict):
            await store.create(name="alice", role=Role.ADMIN)
        with pytest.raises(InvalidArgument):
            await store.create(name="-x", role=Role.ADMIN)
        [info] = await store.all()
        assert (info.name, info.role, info.created_ts) == ("alice", Role.CLIENT, 1000.0)
        await store.revoke("alice")
        with pytest.raises(NotFound):
            await store.revoke("alice")
        assert await store.all() == []
    finally:
        await conn.close()


async def test_the_book_follows_the_table_and_reports_revocations(tmp_path: Path) -> None:
    conn = await open_db(tmp_path)
    try:
        store = TokenStore(conn)
        revoked: list[set[str]] = []
        book = TokenBook(store.hashes, on_revoked=revoked.append)
        await book.reload()
        assert not book.ever_had_tokens and book.verify("jobq_x") is None
        a = await store.create(name="alice", role=Role.CLIENT)
        assert book.verify(a) is None  # not read yet ...
        assert await book.verify_fresh(a) == Identity("alice", Role.CLIENT)  # ... read on the miss
        assert book.ever_had_tokens
        assert book.verify(a + "x") is None and book.verify(a[:-1]) is None
        await store.revoke("alice")
        await book.reload()
        assert book.verify(a) is None and revoked == [{"alice"}]
        assert book.ever_had_tokens  # latched: no tokens left does not mean "no authentication"
    finally:
        await conn.close()


async def test_concurrent_misses_share_reads(tmp_path: Path) -> None:
    import asyncio

    conn = await open_db(tmp_path)
    try:
        store = TokenStore(conn)
        reads = 0

        async def counting() -> list[object]:
            nonlocal reads
            reads += 1
            await asyncio.sleep(0.01)
            return await store.hashes()  # type: ignore[return-value]

        book = TokenBook(counting)  # type: ignore[arg-type]
        results = await asyncio.gather(*(book.verify_fresh(f"jobq_bad{i}") for i in range(50)))
        assert results == [None] * 50
        assert reads <= 2  # one read in flight, at most one more for calls that came after it began
    finally:
        await conn.close()
