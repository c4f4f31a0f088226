"""The vault: encrypted credentials of the accounts, the password generator and the import."""
