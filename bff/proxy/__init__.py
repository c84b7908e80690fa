"""The `/api` proxy. Rules: routes (the table, the canonical path), admission (which
requests a route takes), request_checks (CSRF, Fetch Metadata, request id),
forward_rules, request_headers, forwarding and response_headers (strip, then inject),
replies (the proxy's answers from the table). Services: credentials (CSRF, session,
token), exchange (one upstream request, retried once on 401), dpop_upstream (DPoP proofs
and the upstreams' nonces), response_stream (the answer relayed). Adapter: ws_relay (the
WebSocket upstream and the relay). Edge: app (the hot path as raw ASGI), websocket
(upgrades on `websocket = true` routes)."""
