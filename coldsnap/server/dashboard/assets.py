"""The dashboard's static files: its own (``static/``) and the browser libraries npm
installs beside this package (``package.json``, pinned; `scripts/setup.sh` runs
``npm ci`` here). None of the libraries' code is kept in the repository."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
# URL name -> file. The libraries' minified builds, as their packages ship them.
LIBRARIES = {
    "htmx.min.js": NODE_MODULES / "htmx.org" / "dist" / "htmx.min.js",
    "chart.umd.min.js": NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js",
}
OWN = {name: HERE / "static" / name for name in ("dashboard.js", "dashboard.css")}
TYPES = {".js": "text/javascript", ".css": "text/css"}
INSTALL_HINT = (f"run scripts/setup.sh (it runs `npm ci` in {HERE}), or `npm ci --prefix {HERE}`")


def asset(name: str) -> Path | None:
    """The file behind ``/dashboard/static/<name>``, or None for an unknown name."""
    return LIBRARIES.get(name) or OWN.get(name)


def missing_libraries() -> list[str]:
    """The libraries not installed: the pages say so, with ``INSTALL_HINT``."""
    return [name for name, path in LIBRARIES.items() if not path.is_file()]


def content_type(path: Path) -> str:
    return TYPES.get(path.suffix, "application/octet-stream")
