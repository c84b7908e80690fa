"""The public ASGI edge. Services: runtime (what handlers reach), background (discovery,
metric flushes); rules: inputs, lifecycle. Edge: login_endpoints (/bff/login,
/bff/callback), session_endpoints (/bff/user, /bff/logout, back-channel logout),
sessions_api (/bff/sessions: the user's session inventory), admin_api (the admin
listener's /admin/sessions), health (/healthz, /readyz), events (/bff/events),
error_pages (errors as answers), routing (method tables), middleware, listener.
Composition: assembly (the services), app, admin_app.
"""
