"""Pure cryptographic helpers: no Flask, no database, no other part of govern."""
