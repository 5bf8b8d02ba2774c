"""jobqd: the jobq daemon."""
