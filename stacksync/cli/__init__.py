"""The command-line edge: invoke tasks, flags, and where errors become one line."""
