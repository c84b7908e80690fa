"""What operators see: the audit trail, log formats, Prometheus metrics and tracing."""
