"""Rotation: when secrets must rotate, the tasks that rotate them and their new values, exposure-driven
rotation, reminders, and IT's dashboard (compromise lockdown lives in govern.incidents).

Services validate, change state, write the audit event and flush; the caller commits."""
