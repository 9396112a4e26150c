"""One release, many databases: ``pgship migrate|status|plan|verify --fleet``.

* :mod:`pgship.fleet.targets`: what a fleet is (the fleet file, run-time queries, groups, shards); pure;
* :mod:`pgship.fleet.orchestrate`: the canary, the waves, N at a time, stop or continue on errors;
* :mod:`pgship.fleet.execute`: connecting to each target and running the single-database run there;
* :mod:`pgship.fleet.report`: the combined report as a table, JSON and Markdown; pure;
* :mod:`pgship.fleet.commands`: the command-line options and the command itself.
"""
