"""The OpenID provider side. Rules: `metadata` (the discovery document), `jws` (header,
keys, signature), `validation` (ID- and logout-token claims), `login_checks` (the
callback's checks), `redirects`, `step_up`, `grants` (request parameters and grant
forms), `client_assertion` (private_key_jwt), `dpop` (DPoP proofs). Adapters: `pkce` (the
random login values), `dpop_keys` (the session's DPoP key), `provider_http` (requests,
client authentication and the error translation), `discovery`, `jwks` (the key cache),
`id_tokens` (ID and logout tokens checked), `client` (the confidential client). Services:
`login_bounds`, `login` (login, callback), `logout`, `backchannel`.
"""
