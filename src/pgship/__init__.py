"""pgship: ship PostgreSQL schema changes forward, safely."""

__version__ = "0.1.0"
