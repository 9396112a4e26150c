"""Allow ``python -m pgship``."""

from pgship.cli import main

raise SystemExit(main())
