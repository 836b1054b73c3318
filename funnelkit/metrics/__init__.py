"""The funnel metrics, one module per family (definitions: docs/metrics.md)."""
