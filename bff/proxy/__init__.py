"""The `/api` proxy: the route table, header rules and the hot path as raw ASGI."""
