"""Backups: consistent snapshots of the database with a manifest, their verification and restore."""
