"""jobq: the SDK, the jobqctl CLI and the jobq-node service."""
