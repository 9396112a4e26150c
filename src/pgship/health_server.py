"""Moved to :mod:`pgship.health.server`; this alias stays only while ``cli_release.py`` imports it.

Delete it once nothing imports ``pgship.health_server`` (the CLI's rewrite imports the new path).
"""

from __future__ import annotations

from pgship.health.server import ConnectionGuard, GuardedHttpToolsProtocol, protocol_factory

__all__ = ["ConnectionGuard", "GuardedHttpToolsProtocol", "protocol_factory"]
