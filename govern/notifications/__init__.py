"""In-app notifications per user and the email outbox the jobs runner sends."""
