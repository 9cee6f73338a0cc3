"""Bottom layer: errors, defaults, console output, redaction, the one module that starts processes."""
