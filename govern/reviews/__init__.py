"""Access reviews: campaigns in which owners or managers keep or revoke every grant in scope."""
