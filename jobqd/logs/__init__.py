"""Task logs: one size-capped file per task attempt under the data directory."""
