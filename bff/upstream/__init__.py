"""The upstream hop: the transport Protocols (`protocol`), the transports by origin
(`origins`), the lean HTTP/1.1 client (`client` on `pool`, `connection`, `parser`,
`exchange` and the pure `framing` rules), the aiohttp reference transport
(`aiohttp_transport`), and the browser's side of an exchange (`browser`,
`session_slots`).
"""
