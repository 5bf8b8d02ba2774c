"""API tokens: made once, shown once, stored only as a hash; and the daemon's cache of them.

A token is `jobq_` followed by 43 URL-safe characters (256 random bits). The database keeps its
SHA-256 and nothing else: with that much entropy nobody can search for a preimage, so a slow
password hash would buy nothing and cost time on every RPC. A token is never logged; `token list`
shows names and roles only.

Revocation needs no restart. `jobqd token create|revoke` write the `tokens` table through their own
SQLite connection while jobqd serves (WAL mode lets them). The daemon's `TokenBook` re-reads the
table every `refresh_s` (1 s by default), and whenever it meets a token it does not know. So a new
token works on its first call, and a revoked one stops working within `refresh_s`. Streams opened
with a revoked token are ended too (the guard's `on_revoked`). Reads are shared: calls with unknown
tokens that arrive while one is running wait for the next, so a flood of bad tokens costs at most
one small query at a time, not one per call.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosqlite
import structlog

from jobqd.auth.identity import Identity, Role
from jobqd.domain.errors import Conflict, InvalidArgument, NotFound

log = structlog.get_logger("jobqd.auth")

PREFIX = "jobq_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidArgument(
            "name",
            "1-128 characters: letters, digits and . _ @ - (not first); name a node's token as the node",
        )
    return name


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidArgument("role", f"must be one of {', '.join(r.value for r in Role)}") from None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    role: Role
    created_ts: float


@dataclass(frozen=True, slots=True)
class TokenHash:
    name: str
    role: Role
    digest: bytes


class TokenStore:
    """The `tokens` table (schema migration 2)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def create(self, *, name: str, role: Role, now: float | None = None) -> str:
        """Store a new token's hash and return the token — the only time it is ever seen."""
        check_name(name)
        token = new_token()
        try:
            await self._conn.execute(
                "INSERT INTO tokens (name, role, hash, created_ts) VALUES (?, ?, ?, ?)",
                (name, role.value, digest(token).hex(), time.time() if now is None else now),
            )
        except aiosqlite.IntegrityError:
            raise Conflict(f"a token named {name!r} exists; revoke it first to replace it") from None
        return token

    async def all(self) -> list[TokenInfo]:
        async with self._conn.execute("SELECT name, role, created_ts FROM tokens ORDER BY name") as cur:
            return [TokenInfo(str(n), Role(str(r)), float(ts)) async for n, r, ts in cur]

    async def revoke(self, name: str) -> None:
        async with self._conn.execute("DELETE FROM tokens WHERE name = ?", (name,)) as cur:
            if cur.rowcount == 0:
                raise NotFound("token", name)

    async def hashes(self) -> list[TokenHash]:
        async with self._conn.execute("SELECT name, role, hash FROM tokens") as cur:
            return [TokenHash(str(n), Role(str(r)), bytes.fromhex(str(h))) async for n, r, h in cur]


class TokenBook:
    """The daemon's in-memory copy of the token hashes, kept fresh from the database."""

    def __init__(
        self,
        load: Callable[[], Awaitable[list[TokenHash]]],
        *,
        refresh_s: float = 1.0,
        on_revoked: Callable[[set[str]], None] | None = None,
        on_auth_on: Callable[[], None] | None = None,
    ) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self.on_revoked = on_revoked
        #: called once, when the first token appears and authentication turns on
        self.on_auth_on = on_auth_on
        self._entries: tuple[TokenHash, ...] = ()
        #: when the newest completed read of the table started (monotonic)
        self._read_since = -1.0
        self._reading: asyncio.Future[None] | None = None
        #: latched: once any token existed, authentication stays on until jobqd restarts, so
        #: revoking the last token can never open the API to everyone
        self.ever_had_tokens = False

    @property
    def count(self) -> int:
        return len(self._entries)

    def verify(self, token: str) -> Identity | None:
        """The identity `token` belongs to, or None. Compares against every entry without an early
        exit, in constant time per entry, so timing tells nothing about which bytes matched."""
        d = digest(token)
        found: TokenHash | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, d):
                found = entry
        return Identity(found.name, found.role) if found is not None else None

    async def verify_fresh(self, token: str) -> Identity | None:
        """`verify`; for a token it does not know, after re-reading the table (the token may have
        been created a moment ago)."""
        ident = self.verify(token)
        if ident is None:
            try:
                await self.reload()
            except Exception as err:  # the table cannot be read: the cached tokens still work
                log.warning("cannot re-read the tokens table", error=str(err))
            ident = self.verify(token)
        return ident

    async def reload(self) -> None:
        """Return once a read of the table that started after this call began has completed."""
        since = time.monotonic()
        while self._read_since < since:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read(time.monotonic()))
            fut = self._reading
            try:
                await asyncio.shield(fut)
            finally:
                if self._reading is fut and fut.done():
                    self._reading = None

    async def _read(self, started: float) -> None:
        entries = tuple(await self._load())
        self._read_since = started
        before = {e.name: e.digest for e in self._entries}
        after = {e.name: e.digest for e in entries}
        revoked = {name for name, d in before.items() if after.get(name) != d}
        self._entries = entries
        if entries and not self.ever_had_tokens:
            self.ever_had_tokens = True
            log.info("authentication is on: API tokens exist", tokens=len(entries))
            if self.on_auth_on is not None:
                self.on_auth_on()
        if revoked:
            log.info("tokens revoked", names=sorted(revoked))
            if self.on_revoked is not None:
                self.on_revoked(revoked)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            await self.reload()
