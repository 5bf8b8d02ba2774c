"""jobqctl, the command line for jobqd: a thin layer of click commands over :class:`jobq.Client`.

Modules: ``main`` (the root group and global options), ``context`` (settings and the client),
``exits`` (exit codes and error lines), ``parsing`` (option values), ``rendering`` (tables, JSON,
YAML), then one module per command family.
"""
