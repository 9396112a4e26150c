"""Allow ``python -m pgship``."""

from pgship.cli import run

run()
