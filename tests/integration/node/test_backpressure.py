"""A task printing far more than jobqd can take keeps the node's memory flat and loses nothing."""

from __future__ import annotations

import asyncio

from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import FakeJobqd, StartNode, eventually, exec_

LINE = "0123456789" * 10  # 100 characters + newline
TOTAL_BYTES = 50_000_000
MAX_GROWTH = 32 * 2**20  # the outbox holds 8 MiB; without backpressure the node would hold ~all 50 MB


async def test_flood_with_slow_reader_keeps_rss_bounded(peer: FakeJobqd, start_node: StartNode) -> None:
    node = await start_node()
    session = await peer.session()
    session.read_delay_s = 0.02  # jobqd takes ~50 messages/s: far slower than `yes` writes
    await eventually(lambda: node.rss_bytes() > 0, what="node running")
    baseline = node.rss_bytes()
    session.assign("flood", exec_("/bin/sh", "-c", f"yes {LINE} | head -c {TOTAL_BYTES}"))
    peak = baseline
    final = None
    async with asyncio.timeout(120):
        while final is None:
            peak = max(peak, node.rss_bytes())
            final = next((u for u in session.updates("flood") if u.kind == pb.UPDATE_KIND_COMPLETED), None)
            await asyncio.sleep(0.05)
    print(f"node RSS: baseline {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB")
    assert peak - baseline < MAX_GROWTH, f"node RSS grew by {(peak - baseline) / 2**20:.0f} MiB"
    lines = session.log_lines("flood")
    assert len(lines) == TOTAL_BYTES // (len(LINE) + 1) + 1  # + the cut-off last line
    assert set(lines[:-1]) == {LINE}
