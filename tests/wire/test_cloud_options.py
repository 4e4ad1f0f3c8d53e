"""Modal's keywords that are not FunctionOptions (wire/cloud_options.py): cloud-only ones
are accepted and noticed, the rest refused naming what to do."""

from __future__ import annotations

import pytest

import coldsnap
from coldsnap.wire.cloud_options import cloud_notices, take_cloud_options
from coldsnap.wire.errors import InvalidError


def test_cloud_options_are_taken_out_and_shown() -> None:
    options = {"region": "us-east", "cloud": "aws", "nonpreemptible": True, "i6pn": False,
               "timeout": 5}
    cloud = take_cloud_options("@app.function()", options)
    assert options == {"timeout": 5}  # i6pn=False is Modal's default: nothing to say
    assert cloud == {"region": '"us-east"', "cloud": '"aws"', "nonpreemptible": "true"}


def test_one_notice_per_option_and_value_naming_the_functions() -> None:
    notices = cloud_notices({"f": {"region": '"us-east"'}, "g": {"region": '"us-east"'},
                             "h": {"region": '["eu", "ap"]'}})
    assert notices == [
        'region="us-east" (on f, g) is a Modal cloud option: on Modal it places containers '
        "in Modal's cloud regions; a self-hosted coldsnap server runs functions on its own "
        "host and ignores it",
        'region=["eu", "ap"] (on h) is a Modal cloud option: on Modal it places containers '
        "in Modal's cloud regions; a self-hosted coldsnap server runs functions on its own "
        "host and ignores it",
    ]


@pytest.mark.parametrize(("keyword", "message"), [
    ("keep_warm", "@app.function(): keep_warm= is Modal's old name for min_containers=; "
                  "write min_containers=1"),
    ("network_file_systems", "@app.function(): network_file_systems= is part of Modal's API "
                             "but is not supported by coldsnap yet; use volumes="),
    ("single_use_containers", "single_use_containers= is part of Modal's API but is not "
                              "supported by coldsnap yet"),
])
def test_modal_keywords_coldsnap_lacks_are_refused_by_name(keyword: str, message: str) -> None:
    app = coldsnap.App("cloudy")
    with pytest.raises(InvalidError) as info:
        app.function(**{keyword: 1})
    assert message in str(info.value)


def test_the_options_and_snapshot_inputs_are_unchanged() -> None:
    app = coldsnap.App("cloudy")

    @app.function(region="us-east", cloud="gcp", timeout=9)
    def f() -> None: ...

    @app.function(timeout=9)
    def g() -> None: ...

    @app.cls(nonpreemptible=True)
    class C:
        @coldsnap.method()
        def m(self) -> None: ...

    assert f.options == g.options  # ignored: the container runs the same either way
    assert app.cloud_options == {"f": {"region": '"us-east"', "cloud": '"gcp"'},
                                 "C": {"nonpreemptible": "true"}}
