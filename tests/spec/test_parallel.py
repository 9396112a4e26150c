"""The specification in several behave processes: sharing out, arguments, gathering results, the status."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pgship.testing.spec import parallel
from pgship.testing.spec.allure_formatter import read_environment, write_environment


def test_the_longest_features_go_first_onto_the_least_loaded_worker():
    durations = {
        Path(f"{name}.feature"): seconds for name, seconds in [("a", 9), ("b", 5), ("c", 4), ("d", 1)]
    }
    shares = parallel.share_out(durations, 2)
    assert [[p.stem for p in share.features] for share in shares] == [["a", "d"], ["b", "c"]]
    assert [share.seconds for share in shares] == [10, 9]
    assert len(parallel.share_out(durations, 8)) == 4  # no worker without a feature


def test_behave_arguments_are_split_into_options_paths_and_the_runners_own_settings():
    parsed = parallel.split_arguments(
        ["-D", "db=embedded", "-D", "pgship.keep_results=1", "-f", "progress", "-t", "~@slow",
         "-D", "pgship.results_dir=/tmp/r", "features/a.feature", "--no-summary"]
    )  # fmt: skip
    assert parsed.options == ["-D", "db=embedded", "-f", "progress", "-t", "~@slow", "--no-summary"]
    assert parsed.paths == ["features/a.feature"]
    assert parsed.keep is True and parsed.results == Path("/tmp/r")
    assert parallel.split_arguments(["-D", "pgship.keep_results=0"]).keep is False


def test_durations_come_from_the_previous_results_else_from_the_hint(tmp_path):
    feature = tmp_path / "deployment_flow.feature"
    feature.write_text("@epic:x\nFeature: Deploying a release\n  Scenario: s\n", encoding="utf-8")
    other = tmp_path / "unknown.feature"
    other.write_text("Feature: Something else\n", encoding="utf-8")
    assert parallel.feature_name(feature) == "Deploying a release"
    results = tmp_path / "results"
    assert parallel.expected_durations([feature, other], results) == {
        feature: parallel.DURATION_HINT["deployment_flow"],
        other: 1.0,
    }
    results.mkdir()
    for number, (start, stop) in enumerate([(0, 1500), (2000, 2500)]):
        labels = [{"name": "feature", "value": "Deploying a release"}]
        document = {"labels": labels, "start": start, "stop": stop}
        (results / f"{number}-result.json").write_text(json.dumps(document), encoding="utf-8")
    assert parallel.expected_durations([feature], results) == {feature: 2.0}


def test_the_workers_results_are_gathered_with_one_environment_listing_every_version(tmp_path):
    results = tmp_path / "results"
    write_environment(results, {"PostgreSQL": "14.1", "Backend": "embedded 14", "Python": "3.11"}, keep=False)
    workers = []
    for number in (1, 2):
        worker = tmp_path / f"worker{number}"
        write_environment(
            worker, {"PostgreSQL": "15.2", "Backend": "embedded 15", "Python": "3.11"}, keep=False
        )
        (worker / f"{number}-result.json").write_text("{}", encoding="utf-8")
        workers.append(worker)
    parallel.gather(workers, results)
    assert sorted(p.name for p in results.iterdir()) == [
        "1-result.json",
        "2-result.json",
        "environment.properties",
    ]
    environment = read_environment((results / "environment.properties").read_text(encoding="utf-8"))
    assert environment["PostgreSQL"] == "14.1, 15.2" and environment["Backend"] == "embedded 14, embedded 15"
    assert not any(worker.exists() for worker in workers)


def test_the_counts_are_added_up_over_the_workers():
    outputs = [
        "1 feature passed, 0 failed, 0 skipped\n3 scenarios passed, 1 failed, 0 skipped\n",
        "2 features passed, 0 failed, 0 skipped\n4 scenarios passed, 0 failed, 1 skipped\n",
    ]
    assert parallel.summary(outputs) == [
        "features: 3 passed, 0 failed, 0 skipped",
        "scenarios: 7 passed, 1 failed, 1 skipped",
    ]


def test_the_run_fails_if_any_worker_fails_and_keeps_every_workers_results(tmp_path, capsys):
    """Two fake behave processes: one passes, one fails; each writes a result where it was told to."""
    fake = tmp_path / "fake_behave.py"
    fake.write_text(
        "import sys, pathlib\n"
        "args = sys.argv[1:]\n"
        "out = pathlib.Path(next(a.split('=', 1)[1] for a in args if a.startswith('pgship.results_dir=')))\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "features = [a for a in args if a.endswith('.feature')]\n"
        "for f in features: (out / (pathlib.Path(f).stem + '-result.json')).write_text('{}')\n"
        "print('1 scenario passed, 0 failed, 0 skipped')\n"
        "sys.exit(3 if any('bad' in f for f in features) else 0)\n",
        encoding="utf-8",
    )
    features = []
    for name in ("good", "bad"):
        path = tmp_path / f"{name}.feature"
        path.write_text(f"Feature: {name}\n", encoding="utf-8")
        features.append(str(path))
    results = tmp_path / "results"
    code = parallel.run(2, ["-f", "progress", *features], results=results, behave=[sys.executable, str(fake)])
    assert code == 3
    assert sorted(p.name for p in results.iterdir()) == ["bad-result.json", "good-result.json"]
    assert "scenarios: 2 passed, 0 failed, 0 skipped" in capsys.readouterr().out
    assert not list(tmp_path.glob(".results-worker*"))
