"""jobq-node: the service that runs jobq tasks on one machine.

It connects out to jobqd over one bidirectional gRPC stream (``NodeService.Connect``), runs the
attempts jobqd assigns as child processes (or in-process for the cheap built-in commands), and streams
their output, progress and outcome back. See ``docs/node.md``.

The only public surface is the plugin interface for extra command types (entry point group
``jobq.commands``): :class:`CommandPlugin` and the :class:`LogSink` it writes to.

Layers, each importing only the ones below it::

    main          CLI (click) -> NodeSettings, logging, signals
    service       wiring: builds everything, runs it, stops it in order
    streaming     the Connect stream: Hello, heartbeats, sending, receiving, reconnecting
    node          the attempts registry: Assign / Abort handling, slots, shutdown
    attempts      runs one attempt's commands in order and reports the outcome
    processes     one child process group: spawn, read, time out, terminate
    batching      log lines -> LogChunk batches;  outbox: the bounded queue to the stream
    commands, allowlist, output, backoff, plugins, settings   pure pieces
"""

import os

# gRPC's C core installs fork handlers unless told not to, and reads this when grpc is first
# imported, so it is set here, before any node module imports grpc (the `jobq` package imports
# nothing eagerly for this reason). A child started with --run-as (user, group and groups switched
# between fork and exec) is forked, not vforked, so those handlers ran in it and could abort it
# ("ev_epoll1_linux.cc: Check failed: next_worker->state == KICKED") or crash it with SIGSEGV
# before the command was exec'd — about one run-as start in four under load. The node never forks
# a process that goes on using gRPC. Commands do not see the variable (their environment is
# scrubbed).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


from jobq.node.plugins import CommandPlugin, LogSink

__all__ = ["CommandPlugin", "LogSink"]
