"""Sessions: ids and cookies, the record codec, encryption at rest, and the service that owns
the store.
"""
