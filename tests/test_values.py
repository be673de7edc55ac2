"""values.py: value classes declared like dataclasses, without the dataclasses module (issue #12: its import
and per-class code generation were ~35 ms of every no-op). Each behaviour the code relies on is checked
against the stdlib's dataclass declared the same way."""
from __future__ import annotations

import dataclasses
import pickle

import pytest

from copilot_doit import values


def _pair(frozen: bool):
    """The same declaration as a stdlib dataclass and as a value class."""
    def declare(decorator, field):
        @decorator(frozen=frozen)
        class Point:
            x: int
            y: int = 0
            tags: list = field(default_factory=list)
            note: str = field(default="", repr=False, compare=False)
            memo: dict = field(init=False, repr=False, compare=False, default_factory=dict)

            @property
            def total(self) -> int:
                return self.x + self.y
        return Point
    return declare(dataclasses.dataclass, dataclasses.field), declare(values.value, values.field)


@pytest.mark.parametrize("frozen", [False, True])
def test_init_repr_eq_and_defaults_as_a_dataclass(frozen):
    D, V = _pair(frozen)
    for args, kwargs in [((1,), {}), ((1, 2), {}), ((1,), {"y": 3, "tags": ["a"]}), ((), {"x": 4, "note": "n"})]:
        d, v = D(*args, **kwargs), V(*args, **kwargs)
        assert repr(v) == repr(d).replace(D.__qualname__, V.__qualname__)
        assert (v.x, v.y, v.tags, v.note, v.memo, v.total) == (d.x, d.y, d.tags, d.note, d.memo, d.total)
    assert V(1, 2) == V(1, 2, note="other")          # compare=False
    assert V(1, 2) != V(1, 3) and V(1, [1]) != V(1, [2])
    assert V(1) != D(1) and V(1) != (1, 0)            # another class is never equal
    a, b = V(1), V(1)
    assert a.tags is not b.tags and a.memo is not b.memo   # a fresh default per instance
    for bad_args, bad_kwargs in [((), {}), ((1, 2, [], "", 5), {}), ((1,), {"x": 2}), ((1,), {"z": 1}),
                                 ((1,), {"memo": {}})]:
        with pytest.raises(TypeError):
            D(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            V(*bad_args, **bad_kwargs)


def test_frozen_values_are_hashable_and_refuse_assignment_mutable_ones_are_unhashable():
    _, V = _pair(frozen=True)
    v = V(1, 2)
    with pytest.raises(AttributeError):
        v.x = 3
    with pytest.raises(values.FrozenInstanceError):
        del v.y
    assert hash(V(1, 2, (), note="a")) == hash(V(1, 2, (), note="b"))        # compare=False: not hashed
    assert len({V(1, 2, ()), V(1, 2, ()), V(2, 1, ())}) == 2
    with pytest.raises(TypeError):
        hash(V(1, 2, ["a list"]))   # as a frozen dataclass's hash of an unhashable field
    _, M = _pair(frozen=False)
    m = M(1)
    m.x = 5
    assert m.x == 5
    with pytest.raises(TypeError):
        hash(m)


@pytest.mark.parametrize("frozen", [False, True])
def test_replace_and_pickle(frozen):
    D, V = _pair(frozen)
    v = V(1, 2, tags=["t"], note="n")
    r = values.replace(v, y=9)
    d = dataclasses.replace(D(1, 2, tags=["t"], note="n"), y=9)
    assert (r.x, r.y, r.tags, r.note, r.memo) == (d.x, d.y, d.tags, d.note, d.memo) and r is not v
    assert r.tags is v.tags                 # a shallow copy, as dataclasses.replace
    with pytest.raises(ValueError):
        values.replace(v, memo={})            # init=False
    with pytest.raises(TypeError):
        values.replace(v, z=1)
    globals()["Picklable"] = V                # pickle finds classes by module and name
    V.__qualname__ = "Picklable"
    try:
        assert pickle.loads(pickle.dumps(v)) == v
    finally:
        del globals()["Picklable"]


def test_a_declaration_dataclasses_refuses_is_refused():
    with pytest.raises(TypeError):
        @values.value
        class Bad:
            a: int = 0
            b: int
    with pytest.raises(TypeError):
        @values.value
        class OwnInit:
            a: int

            def __init__(self, a):
                self.a = a
