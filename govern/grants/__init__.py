"""Grants: person x account x role, requested, approved, time-bound and revoked."""
