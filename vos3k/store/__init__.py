"""SQLite schema, migrations and typed repositories: the only package with SQL."""
