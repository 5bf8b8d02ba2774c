"""SQLite persistence: schema and migrations, the group-commit writer, the loader and history reads."""
