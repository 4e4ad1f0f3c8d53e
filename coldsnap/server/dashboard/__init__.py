"""The web dashboard, served under ``/dashboard`` by the HTTP gateway, or on an address of
its own while the gateway is off (standalone.py; docs/dashboard.md)."""

from coldsnap.server.dashboard.auth import DashboardAuth
from coldsnap.server.dashboard.login_op import dashboard_login
from coldsnap.server.dashboard.pages import Dashboard

__all__ = ["Dashboard", "DashboardAuth", "dashboard_login"]
