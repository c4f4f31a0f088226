"""The social media policy: versioned documents per tier, and who accepted which version."""
