"""Rotation: schedules, exposure-driven rotation, guided tasks, compromise lockdown."""
