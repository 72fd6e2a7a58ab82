"""scaleup-ci: run a script at increasing scale inside a time budget."""

__version__ = "0.1.0"
