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

from jobq.node.plugins import CommandPlugin, LogSink

__all__ = ["CommandPlugin", "LogSink"]
