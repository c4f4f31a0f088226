"""The account registry: official social accounts and the role catalogue with platform mappings."""
