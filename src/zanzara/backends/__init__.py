"""Storage back-ends: memory (tests), SQLite (the default), Redis (several nodes)."""
