"""Access tokens for a session. Rules: `records` (token sets, expiry arithmetic) and
`results` (what asking for a token ends with). Services: `refresh` (one refresh, single
flight across instances) and `manager` (the token a request sends; single flight in this
process).
"""
