"""``pgship`` for a profiler: runs the CLI's ``main`` and returns normally.

The console script ends with ``os._exit`` (no interpreter shutdown), which also ends a profiler
before it writes its report; this driver runs the same code (``pgship.cli.main`` with the cyclic
garbage collector off, as the console script does) and exits through ``sys.exit``.

    python -m pyinstrument ... bench/peerbench/pgship_main.py -m DIR migrate
"""

from __future__ import annotations

import gc
import sys


def main() -> int:
    gc.disable()  # as pgship.cli.run does
    from pgship.cli import main as pgship_main

    return pgship_main(sys.argv[1:], for_process=True)


if __name__ == "__main__":
    sys.exit(main())
