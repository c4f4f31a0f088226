"""The staff directory: people, from manual entry, HR exports or SCIM."""
