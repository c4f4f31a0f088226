"""govern: keeps a company's official social media accounts under control."""
