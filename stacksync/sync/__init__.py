"""`sync`: the plan and the phases that make a target the twin of a lock."""
