"""Incidents: compromise lockdown of an account, its urgent rotations, its timeline and closing it."""
