"""Who may call what: API tokens with roles, the per-RPC policy, and the caller's identity.

tokens.py    create / list / revoke tokens (SQLite, hashed) and the daemon's cache of them
policy.py    which role may call which RPC, and which RPCs change state
identity.py  the authenticated caller of the current RPC, and what a client may see
guard.py     the wrapper around every RPC handler that enforces all of it (plus the overload limits)
"""
