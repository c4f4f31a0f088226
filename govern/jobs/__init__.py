"""Time-based work: `govern jobs run` runs every registered step once and records what it did."""
