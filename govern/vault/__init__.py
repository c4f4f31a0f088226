"""The vault: envelope-encrypted credentials of accounts, reveals and exposures, key rotation."""
