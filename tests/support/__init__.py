"""Test support: real jobqd and jobq-node processes on loopback, and waiting helpers."""
