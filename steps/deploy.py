"""Steps about the deploy pipeline (`pgship deploy`: wait, verify, migrate, start, check health).

Filled by the deploy issue. The pipeline runs as a real subprocess
(``context.world.cli.run(..., mode="subprocess")`` or ``.start(...)``), since its
point is process behaviour: stages, exit codes, services that must not start.
"""
