"""The bench's pure parts: reading ``-X importtime``, the same-run ratios, the generated page."""

from __future__ import annotations

import sys
from dataclasses import asdict

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from peerbench.importtime import parse_importtime
from peerbench.report import Sample, Tables, summarise
from performance_page import build_page

# children before their parent, as CPython prints them
IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:        50 |        150 | io
import time:        10 |         10 |       c
import time:        20 |         30 |     b
import time:         5 |          5 |     d
import time:        40 |         75 |   a
import time:         1 |         76 | top
"""


def test_importtime_lines_get_their_depth_and_parent():
    modules = {m.module: m for m in parse_importtime(IMPORTTIME)}
    assert set(modules) == {"_io", "io", "c", "b", "d", "a", "top"}
    assert (modules["_io"].parent, modules["io"].parent) == ("io", "")
    assert (modules["c"].parent, modules["b"].parent, modules["d"].parent) == ("b", "a", "a")
    assert (modules["a"].parent, modules["top"].parent) == ("top", "")
    assert (modules["a"].self_us, modules["a"].cumulative_us, modules["c"].depth) == (40, 75, 3)


def samples() -> list[Sample]:
    rows = []
    for rep in range(3):
        rows += [
            Sample(1000, "floor", "apply", rep, 1.0, 4000, True, 0.5, 0.1),
            Sample(1000, "pgship", "apply", rep, 1.5 + rep / 100, 40000, True, 0.5, 0.6),
            Sample(1000, "psycopg-1rt", "apply", rep, 1.4, 40000, True, 0.5, 0.5),
            Sample(1000, "dbmate", "apply", rep, 2.0, 20000, True, 0.5, 0.3),
            Sample(1000, "pgship", "noop", rep, 0.22, 40000, True, 0.5, 0.2),
            Sample(1000, "pgship", "status", rep, 0.20, 40000, True, 0.5, 0.2),
            Sample(1000, "python-floor", "reference", rep, 0.20, 36000, True, 0.5, 0.2),
        ]
    rows.append(Sample(1000, "pgship", "noop", 3, 9.0, 40000, False, 0.5, 0.2, "exit 1"))  # left out
    return rows


LABELS = {"floor": "floor", "pgship": "pgship migrate", "psycopg-1rt": "minimal, 1 rt", "dbmate": "dbmate"}


def test_the_ratio_table_compares_with_references_of_the_same_run():
    tables = Tables(summarise(samples()), LABELS, 1000, [1000])
    _, rows = tables.ratio_rows()
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["no-op migrate N=1000 ÷ Python floor"] == ["1.10x", "≤ 1.10x", "met"]
    assert by_name["status N=1000 ÷ Python floor"] == ["1.00x", "≤ 1.10x", "met"]
    assert by_name["apply N=1000 ÷ dbmate (Go binary)"] == ["0.76x", "≤ 1.00x", "met"]
    assert by_name["runner CPU N=1000 ÷ minimal runner, 1 round trip"] == ["1.20x", "≤ 1.20x", "met"]
    assert by_name["apply N=1000 ÷ floor (one psql session)"][0] == "1.51x"


def test_the_page_puts_machine_load_and_ratios_before_the_absolute_tables():
    record = {
        "meta": {
            "command": "python bench/peers.py --sizes 1000",
            "started": "2026-11-30T06:00:00+0000",
            "wall_seconds": 60,
            "repeat": 3,
            "noop_size": 1000,
            "noop_sizes": [1000],
            "machine": {"cpu": "Test CPU", "cpus": 2, "memory": "8 GiB", "kernel": "6", "postgresql": "16"},
            "versions": {"pgship": "0.1.0"},
            "tools": {key: {"label": label, "version": ""} for key, label in LABELS.items()},
            "load_average_1min": [0.4, 3.5],
            "failures": ["N=1000 pgship noop: exit 1"],
        },
        "summary": [asdict(s) for s in summarise(samples())],
    }
    template = "# P\n\n{{measured}}\n\n{{tables}}\n\n{{imports}}\n"
    page = build_page(record, template)
    assert "{{" not in page
    machine, load, ratios, absolute = (
        page.index("Test CPU"),
        page.index("0.4 to 3.5"),
        page.index("Same-run ratios"),
        page.index("Apply N fresh migrations"),
    )
    assert machine < ratios < absolute and load < ratios
    assert "other work shared the machine" in page  # 3.5 > 2 CPUs
    assert "N=1000 pgship noop: exit 1" in page
