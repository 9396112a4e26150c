"""The executable specification's harness: behave hooks, step helpers and the Allure formatter.

Kept in the package (not under ``steps/``) so that the hooks, the benchmark
``bench/spec_overhead.py`` and pytest tests of the harness share one
implementation, and so it is importable, type-checked and linted like the rest
of pgship. Nothing here is imported by pgship itself.

Modules, one concept each: ``backends`` (which server), ``databases`` (template
and per-scenario clones), ``cleanup`` (what a scenario must release),
``workspace`` (a scenario's files and the sample app's releases), ``commands``
(running pgship in-process or as a subprocess), ``background`` (a running
pgship whose output a step watches), ``database_link`` (a path to the
database a scenario can close or freeze: outages without stopping the server),
``health_endpoint`` (asking ``pgship serve`` over HTTP), ``release_scripts``
(the shop's build and start scripts for ``pgship deploy``), ``secrets``
(scrubbing), ``attachments`` (what goes into the report), ``runinfo`` (what
hooks tell the formatter), ``allure_formatter``, ``session``, ``world`` and
``parallel`` (the specification in several behave processes, one report).
"""
