"""The pure core of jobqd: model, state machines, failure policy, placement and admission math.

Nothing here does I/O, awaits, logs or knows about gRPC, SQLite or Kubernetes (an import-linter
contract enforces it). Every function takes the current state and an event and returns a decision;
the engine carries the decision out. That keeps every rule testable as a table.
"""
