"""App users: login with password and TOTP, server-side sessions, throttling, app roles."""
