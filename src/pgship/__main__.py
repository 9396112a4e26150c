"""Allow ``python -m pgship``; also the console script's entry point.

The stop signals are caught before anything heavy is imported (psycopg, rich: a few hundred ms), so
a SIGTERM or Ctrl-C that arrives while pgship starts ends it with exit code 130 and a message, like
one that arrives later, instead of the default 143 or a traceback.
"""

import os
import signal
import sys


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def start() -> None:
    signal.signal(signal.SIGTERM, _stop)
    try:
        from pgship.cli import run
    except KeyboardInterrupt:
        print("pgship: interrupted while starting; nothing was done", file=sys.stderr, flush=True)
        os._exit(130)
    run()


if __name__ == "__main__":
    start()
