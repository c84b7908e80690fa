"""What an operator sees: metrics (`metrics`, the batched per-request ones in
`request_metrics` on `batching`), logs (`logs`: formats and the request id), the audit
trail (`audit`), the refusal log (`refusals`) and tracing (`tracing`)."""
