"""Opt-in quality and delivery figures per script version: the page, the report, the charts."""
