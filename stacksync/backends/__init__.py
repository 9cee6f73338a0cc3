"""Installer backends (pip-tools, uv) and the simple-API index client."""
