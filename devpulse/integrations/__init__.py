"""Integrations with other frameworks; each is imported only when its user imports it."""
