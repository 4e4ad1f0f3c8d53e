"""`coldsnap snapshots why APP [FUNCTION]`: why a function's current memory snapshot
was made, compared with the one before it.

Either some inputs differ between the two (the app's source, with the changed
lines; the image's steps; the packages; the function's options; coldsnap's own
version; the host's facts), or they are the same and the history says what
happened to the previous one (it failed, was quarantined, was removed).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from coldsnap.server.errors import ApiError
from coldsnap.server.snapshot_history import CREATED, HistoryEvent, SnapshotHistory
from coldsnap.server.state import StateDB
from coldsnap.wire.errors import NOT_FOUND

MAX_DIFF_LINES = 40  # a source diff longer than this is cut, saying how much
MAX_LISTED = 30  # of package or image-step changes
ENDINGS = {"failed": "failed", "quarantined": "was quarantined", "removed": "was removed"}


def explain(history: SnapshotHistory, db: StateDB, app: str, tag: str | None
            ) -> list[dict[str, Any]]:
    """One explanation per function of ``app`` with snapshots (``tag``: that one only);
    NOT_FOUND says what exists when ``app`` or ``tag`` is unknown."""
    made = history.functions(app)
    row = db.app(app)
    if row is None and not made:
        known = ", ".join(sorted(a["name"] for a in db.apps())) or "none"
        raise ApiError(NOT_FOUND, f"no app named {app!r} (apps: {known}); `coldsnap apps ls` "
                       "lists them")
    if tag is not None:
        stored = db.version(app, row["version"]) if row is not None else None
        functions = set(stored.description.functions) if stored is not None else set()
        if tag not in functions | set(made):
            raise ApiError(NOT_FOUND, f"app {app!r} has no function or class {tag!r}; it has: "
                           f"{', '.join(sorted(functions | set(made))) or 'none'}")
        if (tag not in made and stored is not None and tag in functions
                and not stored.description.functions[tag].options.enable_memory_snapshot):
            raise ApiError(NOT_FOUND, f"{app}/{tag} takes no memory snapshots (it does not set "
                           "enable_memory_snapshot=True): its cold boots run the imports "
                           "each time")
        made = [tag]
    if not made:
        raise ApiError(NOT_FOUND, f"no memory snapshot of app {app!r} has been made yet: the "
                       "first cold boot of a function with enable_memory_snapshot=True makes "
                       "one")
    return [explain_function(history, db, app, name) for name in made]


def explain_function(history: SnapshotHistory, db: StateDB, app: str, tag: str
                     ) -> dict[str, Any]:
    events = history.of_function(app, tag)
    created = [i for i, event in enumerate(events) if event.event == CREATED]
    if not created:
        raise ApiError(NOT_FOUND, f"no memory snapshot of {app}/{tag} has been made yet: the "
                       "first cold boot of a function with enable_memory_snapshot=True makes "
                       "one")
    current = events[created[-1]]
    result: dict[str, Any] = {"app": app, "function": tag, "current": _summary(current),
                              "previous": None, "changes": [], "same_inputs": False,
                              "previous_ended": []}
    if len(created) == 1:
        return result
    previous = events[created[-2]]
    result["previous"] = _summary(previous)
    result["previous_ended"] = [
        {"event": event.event, "detail": event.detail, "at": event.at}
        for event in events[created[-2] + 1:created[-1]]
        if event.key == previous.key and event.event != CREATED]
    result["changes"] = changes(db, previous, current, app)
    result["same_inputs"] = not result["changes"]
    return result


def _summary(event: HistoryEvent) -> dict[str, Any]:
    # made_by: the app whose boot made it, another than the one asked about when a
    # `coldsnap run` copy of the same source made it first
    return {"key": event.key, "version": event.version, "created_at": event.at,
            "made_by": event.app}


def changes(db: StateDB, before: HistoryEvent, after: HistoryEvent, app: str = ""
            ) -> list[dict[str, Any]]:
    """What differs between the inputs of two snapshots, each ``{"input", "summary"}``
    (and ``"diff"`` for the source); ``app``'s versions hold the sources that the apps
    which made them (deleted `coldsnap run` copies) no longer do."""
    old, new = before.inputs or {}, after.inputs or {}
    found: list[dict[str, Any]] = []
    if old.get("source") != new.get("source"):
        found.append(_source_change(db, before, after, app))
    found += _listed("image", "image steps", _step_lines(old.get("image")),
                     _step_lines(new.get("image")))
    found += file_changes(old.get("files") or [], new.get("files") or [])
    if not found and old.get("built_image") != new.get("built_image"):
        found.append({"input": "image", "summary": "the image was built again (force_build, "
                      "or a file it adds changed)"})
    found += _listed("packages", "packages", _package_lines(old.get("packages")),
                     _package_lines(new.get("packages")))
    for name in ("python", "variant"):
        if old.get(name) != new.get(name):
            found.append({"input": name, "summary": f"{name}: {old.get(name)!r} -> "
                          f"{new.get(name)!r}"})
    found += _mapping_changes("option", old.get("options") or {}, new.get("options") or {})
    found += _mapping_changes("coldsnap", old.get("coldsnap") or {}, new.get("coldsnap") or {})
    found += _mapping_changes("host", old.get("host") or {}, new.get("host") or {})
    if not found and before.version != after.version:
        found.append({"input": "version", "summary": f"version {before.version[:12]} -> "
                      f"{after.version[:12]}: something its hash covers changed that is not "
                      "recorded apart (a file the image adds from your machine)"})
    return found


def _source_change(db: StateDB, before: HistoryEvent, after: HistoryEvent, app: str
                   ) -> dict[str, Any]:
    name = (after.inputs or {}).get("source", {}).get("file", "app.py")
    old = db.version(before.app, before.version) or db.version(app, before.version)
    new = db.version(after.app, after.version) or db.version(app, after.version)
    if old is None or new is None:
        return {"input": "source", "file": name, "summary": f"{name} changed (the earlier "
                "source is no longer stored: its app was deleted since)"}
    lines = list(difflib.unified_diff(
        old.source.decode("utf-8", "replace").splitlines(),
        new.source.decode("utf-8", "replace").splitlines(),
        f"{name} (version {before.version[:12]})", f"{name} (version {after.version[:12]})",
        n=1, lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more lines)"]
    return {"input": "source", "file": name, "diff": "\n".join(lines),
            "summary": f"{name}: {_counted(lines)}"}


def file_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """The files the image's layers add (modules beside the app, add_local_*) that
    changed, with a diff where both versions are still on disk."""
    before = {rel: (layer["layer"], sha) for layer in old
              for rel, sha in (layer.get("files") or {}).items()}
    after = {rel: (layer["layer"], sha) for layer in new
             for rel, sha in (layer.get("files") or {}).items()}
    found = []
    for rel in sorted(set(before) | set(after)):
        if rel in before and rel in after and before[rel][1] == after[rel][1]:
            continue
        if rel not in before:
            found.append({"input": "file", "file": rel, "summary": f"{rel}: added"})
        elif rel not in after:
            found.append({"input": "file", "file": rel, "summary": f"{rel}: removed"})
        else:
            found.append(_file_diff(rel, before[rel][0], after[rel][0]))
    return found[:MAX_LISTED]


def _file_diff(rel: str, old_layer: str, new_layer: str) -> dict[str, Any]:
    try:
        old = Path(old_layer, rel).read_text(errors="replace").splitlines()
        new = Path(new_layer, rel).read_text(errors="replace").splitlines()
    except OSError:
        return {"input": "file", "file": rel, "summary": f"{rel} changed (the earlier "
                "image's copy is no longer on disk)"}
    lines = list(difflib.unified_diff(old, new, f"{rel} (before)", f"{rel} (now)", n=1,
                                      lineterm=""))
    summary = f"{rel}: {_counted(lines)}"
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more lines)"]
    return {"input": "file", "file": rel, "diff": "\n".join(lines), "summary": summary}


def _counted(diff: list[str]) -> str:
    """A unified diff's lines added and removed, in words: ``1 line changed`` for one
    line edited, else ``2 lines added, 1 removed``."""
    added = sum(1 for line in diff[2:] if line[:1] == "+" and not line.startswith("+++"))
    removed = sum(1 for line in diff[2:] if line[:1] == "-" and not line.startswith("---"))
    if added == removed:
        return f"{added} line{'s' * (added != 1)} changed"
    return (f"{added} line{'s' * (added != 1)} added, {removed} removed" if added and removed
            else f"{added} line{'s' * (added != 1)} added" if added
            else f"{removed} line{'s' * (removed != 1)} removed")


def _step_lines(layers: Any) -> list[str]:
    return [json.dumps(layer, sort_keys=True) for layer in layers or []]


def _package_lines(packages: Any) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted((packages or {}).items())]


def _listed(input_name: str, what: str, old: list[str], new: list[str]) -> list[dict[str, Any]]:
    """Lines only ``old`` has ("-") and only ``new`` has ("+"), as one change."""
    gone = [f"-{line}" for line in old if line not in new]
    added = [f"+{line}" for line in new if line not in old]
    if not gone and not added:
        return []
    lines = [*gone, *added]
    more = f" (and {len(lines) - MAX_LISTED} more)" if len(lines) > MAX_LISTED else ""
    return [{"input": input_name, "summary": f"{what}: " + ", ".join(lines[:MAX_LISTED]) + more}]


def _mapping_changes(what: str, old: dict[str, Any], new: dict[str, Any]
                     ) -> list[dict[str, Any]]:
    """One change per key whose value differs: ``option timeout: 300 -> 60``."""
    return [{"input": what, "name": name,
             "summary": f"{what} {name}: {_short(old.get(name))} -> {_short(new.get(name))}"}
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def _short(value: Any, width: int = 120) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 1] + "…"
