"""The reliability campaign: faults, races and hostile input against real PostgreSQL (issue 8)."""
