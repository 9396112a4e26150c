"""Steps about the health endpoint (`pgship serve`, /health/live, /health, /health/database).

Filled by the health issue. Helpers to use from here: ``context.world.cli.start(...)``
starts `pgship serve` as a subprocess that is stopped after the scenario, and
``pgship.testing.spec.attachments.attach_json`` puts each health response in the report.
"""
