"""Sessions. Rules: `records` (a session's record), `login_record` (a pending login's),
`codec` with `codec_primitives`, `codec_writer`, `codec_tables` and `codec_zdict` (record
format 2), `cookies` (signing, finding, attributes), `inventory` (the session handles
users see and the listings of users and operators). Adapters: `ids` (session ids) and
`crypto` (keys, sealing). Services: `service` (cookie -> session; create, save, end) over
`service_ops` (the store's other operations): the service owns the store.
Live connections: `events` (rules: the session-ended event, the per-worker registry, the
bus protocol), `bus` (adapters: Redis pub/sub, in-process), `live` (service: what closes
a session's WebSockets and streams when it ends anywhere).
"""
