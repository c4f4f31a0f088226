"""Administration of govern logins: invitations, app roles, deactivation, MFA resets, sessions."""
