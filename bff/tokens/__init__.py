"""Access tokens for a session: expiry arithmetic and the manager that refreshes exactly once."""
