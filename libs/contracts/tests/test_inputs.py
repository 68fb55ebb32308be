"""Input names and placement paths: one rule, applied by the gateway, the contracts and every executor."""

from __future__ import annotations

import msgspec
import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

BAD_NAMES = ["", "../x", "/etc/passwd", "a/../../b", "a\x00b", "x" * 300, "a//b", "a/", ".x", "a\n", "a b"]
BAD_PATHS = ["", "/etc/passwd", "../x", "a/../../b", "a/./b", "a//b", "a\x00b", "a\nb", "x" * 1025]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused(name):
    with pytest.raises(ValueError, match="input name"):
        v1.check_input_name(name)


@pytest.mark.parametrize("name", ["a", "cfg.yaml", "data/2024/train-1.csv", "A_b.c-d", "/".join(["s"] * 8)])
def test_safe_names(name):
    assert v1.check_input_name(name) == name


def test_depth_and_length_limits():
    with pytest.raises(ValueError, match="input name"):
        v1.check_input_name("/".join(["s"] * 9))
    longest = "a" * 128 + "/" + "b" * 126
    assert len(longest) == 255 and v1.check_input_name(longest) == longest
    with pytest.raises(ValueError, match="input name"):
        v1.check_input_name("a" * 129)


@pytest.mark.parametrize("path", BAD_PATHS)
def test_a_spec_with_an_unsafe_path_is_invalid(path):
    body = msgspec.json.encode({"command": ["true"], "inputs": [{"name": "ok", "path": path}]})
    with pytest.raises(msgspec.ValidationError, match=r"\$\.inputs\[0\]"):
        v1.decode_strict(body, v1.JobSpec)


@pytest.mark.parametrize("name", BAD_NAMES[1:5])
def test_a_spec_with_an_unsafe_name_is_invalid(name):
    body = msgspec.json.encode({"command": ["true"], "inputs": [{"name": name}]})
    with pytest.raises(msgspec.ValidationError):
        v1.decode_strict(body, v1.JobSpec)


def test_targets_default_to_the_last_segment_and_may_not_clash():
    refs = [v1.InputRef(name="d/cfg.yaml"), v1.InputRef(name="b", path="x/y")]
    spec = v1.JobSpec(command=["x"], inputs=refs)
    assert [r.target for r in spec.inputs] == ["cfg.yaml", "x/y"]
    body = b'{"command":["x"],"inputs":[{"name":"a/cfg"},{"name":"b/cfg"}]}'
    with pytest.raises(msgspec.ValidationError, match="collide"):
        v1.decode_strict(body, v1.JobSpec)
    body = b'{"command":["x"],"inputs":[{"name":"a","path":"d"},{"name":"b","path":"d/e"}]}'
    with pytest.raises(msgspec.ValidationError, match="collide"):
        v1.decode_strict(body, v1.JobSpec)
    ok = b'{"command":["x"],"inputs":[{"name":"a","path":"d"},{"name":"b","path":"d.e/f"}]}'
    assert len(v1.decode_strict(ok, v1.JobSpec).inputs) == 2


def test_owner_prefixes_never_overlap():
    assert sj.input_object("alice", "cfg") == "alice/cfg"
    assert sj.input_object("alice/cfg", "x") != sj.input_object("alice", "cfg/x")
    assert not sj.input_object("alice/cfg", "x").startswith(sj.input_prefix("alice"))
