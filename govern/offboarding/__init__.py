"""Offboarding: HR starts it, govern drives the checklist to done, auditors get the evidence."""
