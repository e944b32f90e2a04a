"""Command-line interface (``radapter ...``)."""
