"""Modal's ``@app.function``/``@app.cls`` keywords that are not ``FunctionOptions``.

Modal's keywords fall in three groups (docs/resources.md has the table):

- implemented: ``FunctionOptions``'s fields (wire/options.py), ``image=``;
- cloud-only (``CLOUD_OPTIONS``): where Modal places a container or how its cloud
  network reaches it. A self-hosted server runs on its own hosts, so these are accepted
  and ignored, and a deploy says so once (``cloud_notices``);
- not supported yet (``NOT_YET``), or renamed by Modal (``RENAMED``): refused with an
  error that names the keyword and what to do.

Example::

    cloud = take_cloud_options("@app.function()", options)  # {"region": '"us-east"'}
    cloud_notices({"f": cloud})
    # ['region="us-east" (on f) is a Modal cloud option; a self-hosted ...']
"""

from __future__ import annotations

import json
from typing import Any

from coldsnap.wire.errors import InvalidError

# keyword -> what it does on Modal's cloud.
CLOUD_OPTIONS = {
    "region": "places containers in Modal's cloud regions",
    "cloud": "picks the cloud provider Modal runs containers on",
    "nonpreemptible": "keeps Modal's cloud from preempting containers",
    "i6pn": "joins Modal's private IPv6 network between containers",
    "proxy": "routes outbound traffic through a Modal Proxy's static IP",
    "_experimental_proxy_ip": "routes outbound traffic through a Modal Proxy's static IP",
    "_experimental_scheduler_placement": "places containers in Modal's cloud",
}
# keyword -> what to do instead (Modal has it; coldsnap does not yet).
NOT_YET = {
    "network_file_systems": "use volumes={path: coldsnap.Volume.from_name(...)}",
    "cloud_bucket_mounts": "copy the bucket's data into a coldsnap.Volume",
    "single_use_containers": "remove it (a container serves many inputs)",
    "buffer_containers": "use min_containers=",
    "restrict_modal_access": "remove it",
    "serialized": "define the function at the top level of the app file",
    "is_generator": "remove it",
    "include_source": "remove it (the app file is always included)",
    "name": "rename the Python function or class",
}
# Modal's old keyword -> its new one (what coldsnap takes).
RENAMED = {
    "keep_warm": "min_containers",
    "concurrency_limit": "max_containers",
    "container_idle_timeout": "scaledown_window",
}


def take_cloud_options(decorator: str, options: dict[str, Any]) -> dict[str, str]:
    """Remove the cloud-only keywords from ``options``; returns keyword -> the value as
    shown in a notice. InvalidError for a Modal keyword coldsnap lacks or that Modal renamed.
    """
    renamed = sorted(set(options) & set(RENAMED))
    if renamed:
        old, new = renamed[0], RENAMED[renamed[0]]
        raise InvalidError(f"{decorator}: {old}= is Modal's old name for {new}=; "
                           f"write {new}={options[old]!r}")
    missing = sorted(set(options) & set(NOT_YET))
    if missing:
        raise InvalidError(f"{decorator}: {missing[0]}= is part of Modal's API but is not "
                           f"supported by coldsnap yet; {NOT_YET[missing[0]]}")
    given = {name: options.pop(name) for name in sorted(set(options) & set(CLOUD_OPTIONS))}
    return {name: _shown(value) for name, value in given.items()
            if value is not None and value is not False}


def cloud_notices(functions: dict[str, dict[str, str]]) -> list[str]:
    """One line per cloud-only keyword and value set anywhere in an app (tag -> its
    ``take_cloud_options``), naming the functions that set it."""
    where: dict[tuple[str, str], list[str]] = {}
    for tag, options in sorted(functions.items()):
        for name, shown in sorted(options.items()):
            where.setdefault((name, shown), []).append(tag)
    return [f"{name}={shown} (on {', '.join(tags)}) is a Modal cloud option: on Modal it "
            f"{CLOUD_OPTIONS.get(name, 'places containers in its cloud')}; a self-hosted "
            "coldsnap server runs functions on its own host and ignores it"
            for (name, shown), tags in where.items()]


def _shown(value: Any) -> str:
    if isinstance(value, str | bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return json.dumps(list(value))
    return f"<{type(value).__name__}>"
