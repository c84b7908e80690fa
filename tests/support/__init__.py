"""Helpers the tests share (and `bench/` reuses): free loopback ports and private
redis-servers, the processes a test starts (`Stack`), private Sentinel and Cluster groups,
real logins through the development provider, the failover load loop, logout-token
claims, and benchmark figures without a run (`bench_results`)."""
