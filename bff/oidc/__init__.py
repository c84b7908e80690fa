"""The OpenID provider side. Rules: `metadata` (the discovery document), `jws` (header,
keys, signature), `validation` (ID- and logout-token claims), `login_checks` (the
callback's checks), `redirects`. Adapters: `pkce` (the random login values),
`provider_http` (requests and the error translation), `discovery`, `jwks` (the key cache),
`client` (the confidential client). Services: `login_bounds`, `login` (login, callback),
`logout`, `backchannel`.
"""
