"""Evidence out of the store: exports (CSV, JSONL, receipts), their manifests and checks,
the receipt's sentences."""
