"""Whether this replica should get traffic: liveness (the process answers) and readiness (it can serve).

Ready means the database answers and its schema is the one this code needs. The payment provider's
state is reported but does not make a replica unready: every replica shares the same provider, and
balances, spends and history do not need it (a checkout fails fast with a clear answer while it is down).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from backend import migrations
from backend.errors import CreditdeskError
from backend.services import Services

# How long a load balancer is told to wait before asking an unready replica again.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not_ready", "checks": self.checks}


def readiness(services: Services) -> Readiness:
    """Ask the database (one round trip) and compare its schema with this code's; blocking I/O."""
    checks: dict[str, Any] = {"paymentProvider": services.gateway.health()}
    try:
        with services.db.read() as conn:
            conn.execute(text("SELECT 1"))
            schema = migrations.stored_version(conn)
    except (CreditdeskError, OSError) as exc:
        checks["database"] = {"state": "unavailable", "reason": type(exc).__name__}
        return Readiness(False, checks)
    except Exception as exc:  # a driver error the storage layer did not map: still only "not ready"
        checks["database"] = {"state": "unavailable", "reason": type(exc).__name__}
        return Readiness(False, checks)
    needed = migrations.newest()
    checks["database"] = {"state": "available", "schema": schema, "needs": needed}
    if schema != needed:
        checks["database"]["state"] = "not_migrated"
        return Readiness(False, checks)
    return Readiness(True, checks)
