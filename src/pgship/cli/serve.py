"""``pgship serve``: the health endpoints over HTTP (needs ``pgship[serve]``: starlette, uvicorn).

Parses, calls the library (:mod:`pgship.health`) and renders; the web stack is imported only when
the server starts.
"""

from __future__ import annotations

import argparse
import copy
import logging
from typing import Any

from pgship import config
from pgship.cli.context import Context
from pgship.cli.options import seconds_option
from pgship.errors import ExitCode, PgshipError, UsageError
from pgship.options import connection_count, header_bytes, port_number

DESCRIPTION = """\
Serve the health endpoints (application/health+json) under uvicorn:

  GET /health/live      200 while the process serves; never touches the database
  GET /health           readiness: 200 when the database answers and nothing is pending, else 503
  GET /health/database  details (response time, server version, applied and shipped migrations,
                        pending, applied-without-file, checksum mismatches); pass/warn 200, fail 503

"Shipped" migrations are the files in the migrations directory, read once at start-up.
The database check is bounded (--check-timeout) and cached (--cache-ttl): however many
requests arrive, the database sees at most one check per cache period.

Slow, broken or hostile clients cannot starve the probes:
  - a connection must deliver a complete request within --header-timeout of opening (or of
    its previous answer), or it is closed (408 if a request had begun); so is one that stops
    reading its answers for as long. Idle keep-alive connections close after 5 s at most;
  - a request line plus headers over --max-header-size gets 431, and is never buffered whole;
  - at --max-connections open, a new connection closes the one that has waited longest for a
    complete request. The open-files soft limit is raised to the hard limit at start-up, and
    the connection cap is kept 64 under it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pgship.health.limits import (
        DEFAULT_HEADER_TIMEOUT_S,
        DEFAULT_MAX_CONNECTIONS,
        DEFAULT_MAX_HEADER_BYTES,
    )

    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=8080, help="default: %(default)d")
    parser.add_argument(
        "--release-id",
        metavar="ID",
        help=f"reported as releaseId, e.g. the git SHA (default: ${config.RELEASE_ID_ENV})",
    )
    parser.add_argument(
        "--token-env",
        metavar="NAME",
        default=config.HEALTH_TOKEN_ENV,
        help="environment variable holding the bearer token that /health/database requires "
        "(default: %(default)s; unset or empty: no token). Never pass a token as an argument.",
    )
    seconds_option(
        parser,
        "--cache-ttl",
        default=config.HEALTH_CACHE_TTL_S,
        help="reuse a database check this long (default: %(default)g; 0: check on every request)",
    )
    seconds_option(
        parser,
        "--check-timeout",
        default=config.HEALTH_CHECK_TIMEOUT_S,
        timeout=True,
        help="a database check that takes longer fails with 503 (default: %(default)g)",
    )
    seconds_option(
        parser,
        "--header-timeout",
        default=DEFAULT_HEADER_TIMEOUT_S,
        timeout=True,
        help="close a connection that has not sent a complete request this long after opening "
        "or after its previous response (default: %(default)g)",
    )
    parser.add_argument(
        "--max-header-size",
        type=header_bytes,
        default=DEFAULT_MAX_HEADER_BYTES,
        metavar="BYTES",
        help="answer 431 to a request whose line and headers are larger (default: %(default)d)",
    )
    parser.add_argument(
        "--max-connections",
        type=connection_count,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="open client connections; beyond, the one waiting longest for a complete request "
        "is closed (default: %(default)d, and at most the open-files limit less 64)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (method, path, status; no query string)"
    )


def run(ctx: Context) -> int:
    import gc

    import uvicorn

    gc.enable()  # `pgship` runs with the collector off (cli.entry.run): a server lives long enough to need it

    from pgship.health import create_app
    from pgship.health.limits import ServerLimits, effective_max_connections, raise_fd_limit
    from pgship.health.server import protocol_factory

    args = ctx.args
    if args.check_timeout <= 0:
        raise UsageError("--check-timeout must be more than 0 s")
    limits = ServerLimits(args.header_timeout, args.max_header_size, args.max_connections)
    fd_soft_limit, _ = raise_fd_limit()
    max_connections = effective_max_connections(limits, fd_soft_limit)
    token = config.secret_from_env(args.token_env)
    if token:
        ctx.out.secrets.append(token)
    release_id = config.release_id(args.release_id)
    app = create_app(
        database_url=ctx.settings.database_url,
        migrations_dir=ctx.settings.migrations_dir,
        table=ctx.settings.table,
        release_id=release_id,
        token=token,
        cache_ttl_s=args.cache_ttl,
        check_timeout_s=args.check_timeout,
    )
    release = app.state.health.release
    for warning in release.discovery.warnings:
        ctx.out.warn(warning)
    url = f"http://{args.host}:{args.port}"
    if ctx.out.as_json:
        ctx.out.document(
            {
                **ctx.header(),
                "status": "serving",
                "url": url,
                "release_id": release_id,
                "shipped": release.shipped_count,
                "latest_shipped": release.latest_shipped,
                "token_required": token is not None,
                "cache_ttl_s": args.cache_ttl,
                "check_timeout_s": args.check_timeout,
                "header_timeout_s": limits.header_timeout_s,
                "max_header_bytes": limits.max_header_bytes,
                "max_connections": max_connections,
            }
        )
    else:
        ctx.out.line(
            f"pgship serve: {url}/health (release {release_id or 'not set'}; "
            f"{release.shipped_count} migrations shipped, latest {release.latest_shipped or 'none'}; "
            f"/health/database {'needs a bearer token' if token else 'is open'})"
        )
    server_config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=protocol_factory(limits, max_connections),
        ws="none",  # no WebSocket upgrades: an upgraded connection would leave the guard
        log_config=uvicorn_log_config(),
        access_log=args.access_log,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(server_config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # SIGINT/SIGTERM: uvicorn has shut down gracefully, then re-raised the signal
    except SystemExit:
        if not server.started:
            raise PgshipError(
                f"cannot listen on {args.host}:{args.port}",
                hint="Another process may use the port: stop it or pick another with --port.",
            ) from None
        raise
    return ExitCode.OK


class PathOnly(logging.Filter):
    """Drops the query string from access-log lines: nothing but the path is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, str(path).split("?", 1)[0], version, status)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging, plus pgship's health log; psycopg's own (unscrubbed) warnings are muted."""
    from uvicorn.config import LOGGING_CONFIG

    logging_config = copy.deepcopy(LOGGING_CONFIG)
    logging_config.setdefault("filters", {})["path_only"] = {"()": PathOnly}
    logging_config["handlers"]["access"]["filters"] = ["path_only"]
    logging_config["loggers"]["pgship"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    logging_config["loggers"]["psycopg"] = {"handlers": ["default"], "level": "ERROR", "propagate": False}
    return logging_config
