"""Clients of the platforms' APIs, over one small HTTP base (``base``)."""
