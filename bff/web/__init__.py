"""The public ASGI edge: `/bff/*` endpoints, middleware, the composed app, the admin app and
the listener.
"""
