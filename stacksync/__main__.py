"""``python -m stacksync``: the ``stacksync`` command."""

from stacksync.cli.program import main

if __name__ == "__main__":
    main()
