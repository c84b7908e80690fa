"""The OpenID provider side: the client, token validation, the login flow and back-channel
logout.
"""
