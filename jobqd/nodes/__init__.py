"""Node sessions: the NodeService stream, leases, heartbeats and dispatch to nodes."""
