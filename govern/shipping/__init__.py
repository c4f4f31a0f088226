"""Shipping the audit trail out: sinks (syslog, HTTPS), their cursors, formats and transports."""
