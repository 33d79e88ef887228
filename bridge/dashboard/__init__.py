"""The read-only admin dashboard served by the daemon's operations endpoint."""

from bridge.dashboard.views import Dashboard

__all__ = ["Dashboard"]
