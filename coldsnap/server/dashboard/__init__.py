"""The web dashboard, served by the HTTP gateway under ``/dashboard`` (docs/dashboard.md)."""

from coldsnap.server.dashboard.auth import DashboardAuth
from coldsnap.server.dashboard.login_op import dashboard_login
from coldsnap.server.dashboard.pages import Dashboard

__all__ = ["Dashboard", "DashboardAuth", "dashboard_login"]
