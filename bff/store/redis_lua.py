"""The Redis store's Lua scripts: each runs on one key, so it is Cluster-safe."""

from __future__ import annotations

__all__ = ["ADD_PENDING_LUA", "RELEASE_LUA", "REMOVE_PENDING_LUA"]

# Compare-and-delete: only the owner of the lease may release it.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Bounded pending group (one sorted set; scores are expiry times in ms on Redis's clock).
# ARGV: member, limit, ttl_ms, evict_oldest (1/0). Returns 0 when counted, else seconds
# until the oldest member expires.
ADD_PENDING_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    local n = redis.call('ZCARD', KEYS[1])
    if n >= limit then
        if ARGV[4] ~= '1' then
            local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
            return math.max(1, math.ceil((tonumber(oldest[2]) - now) / 1000))
        end
        redis.call('ZPOPMIN', KEYS[1], n - limit + 1)
    end
end
-- Strictly increasing scores keep insertion order (the oldest is evicted first).
local score = now + ttl
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= score and newest[1] ~= ARGV[1] then
    score = tonumber(newest[2]) + 1
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('PEXPIRE', KEYS[1], score - now)
return 0
"""

# ARGV: member. 1 when it was counted and unexpired.
REMOVE_PENDING_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
    return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then
    return 0
end
return 1
"""
