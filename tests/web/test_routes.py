"""Which endpoint a request names, and the URLs users are given."""

from __future__ import annotations

import pytest

from coldsnap.server.gateway.routes import Route, route
from coldsnap.wire import web


@pytest.mark.parametrize(("host", "path", "expected"), [
    ("shop--api.localhost:8000", "/items?x=1", Route("shop", "api", "/items?x=1")),
    ("my-app--api.localhost", "/", Route("my-app", "api", "/")),
    ("SHOP--Api.LOCALHOST:8000", "/", Route("shop", "api", "/")),  # host names: any case
    ("127.0.0.1:8000", "/web/shop--api/items?x=1",
     Route("shop", "api", "/items?x=1", "/web/shop--api")),
    ("127.0.0.1:8000", "/web/shop--api?x=1", Route("shop", "api", "/?x=1", "/web/shop--api")),
    ("127.0.0.1:8000", "/web/Shop_1--api", Route("Shop_1", "api", "/", "/web/Shop_1--api")),
    ("127.0.0.1:8000", "/items", None),
    ("localhost:8000", "/", None),
    ("shop.localhost:8000", "/", None),
])
def test_route(host: str, path: str, expected: Route | None) -> None:
    assert route(host, path) == expected


def test_urls_use_a_host_name_on_loopback_and_the_path_form_elsewhere() -> None:
    assert web.endpoint_url("http://127.0.0.1:8000", "shop", "api") == \
        "http://shop--api.localhost:8000"
    assert web.endpoint_url("http://10.0.0.2:8000", "shop", "api") == \
        "http://10.0.0.2:8000/web/shop--api"
    # A name that can't be a host name (capitals, '_') gets the path form.
    assert web.endpoint_url("http://127.0.0.1:8000", "Shop_1", "api") == \
        "http://127.0.0.1:8000/web/Shop_1--api"
    assert web.path_form("http://shop--api.localhost:8000") == \
        "http://127.0.0.1:8000/web/shop--api"


@pytest.mark.parametrize(("names", "label"), [
    (("Embedder", "embed"), "embedder-embed"),
    (("my_func",), "my-func"),
    (("a__b",), "a-b"),
])
def test_default_labels_are_host_name_safe(names: tuple[str, ...], label: str) -> None:
    assert web.default_label(*names) == label
    assert web.is_label(label)
