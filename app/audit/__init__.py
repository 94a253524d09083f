"""The audit trail: one hash-chained, append-only record per screening, refusal, error and delivery."""
