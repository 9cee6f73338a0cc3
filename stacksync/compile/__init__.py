"""`compile`: requirements.in to the hashed lock."""
