"""The upstream hop: the transport protocol, the lean HTTP/1.1 client and its pool, and a
reference transport.
"""
