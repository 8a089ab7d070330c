"""A gateway fleet: several ``callm serve`` instances sharing one PostgreSQL and one Redis.

Loaded only when ``CALLM_DATABASE_URL`` names PostgreSQL; its drivers come with
``pip install 'callm[fleet]'``.
"""

from __future__ import annotations

from .ledger import FleetConfig, FleetLedger

__all__ = ["FleetConfig", "FleetLedger"]
