"""nuseal.record: the record type keeps what msgspec structs gave the library (docs/decisions.md "Records"), with
the generic constructor and with the one a class gets after ``SPECIALIZE_AFTER`` records."""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest

from nuseal import record
from nuseal.record import Struct, field, fields, force_setattr, replace


class Point(Struct, frozen=True):
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)
    KIND: ClassVar[str] = "point"

    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


class Point3(Point, frozen=True):
    z: int = 0


class Checked(Struct, frozen=True):
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")
        force_setattr(self, "double", self.value * 2)


class Mutable(Struct):
    items: list[int] = field(default_factory=list)


def _specialized(cls: type[Struct]) -> None:
    for _ in range(record.SPECIALIZE_AFTER):
        if cls is Checked:
            Checked(1)
        elif cls is Mutable:
            Mutable()
        else:
            cls(1)


@pytest.fixture(params=["generic", "specialized"])
def constructor(request: pytest.FixtureRequest) -> str:
    if request.param == "specialized":
        for cls in (Point, Point3, Checked, Mutable):
            _specialized(cls)
            assert cls.__init__ is not Struct.__init__
    return str(request.param)


def test_construction_defaults_and_factories(constructor: str) -> None:
    assert Point(1) == Point(x=1) == Point(1, 0, ())
    assert Point(1, tags=("a",)).tags == ("a",)
    assert Point3(1, 2, (), 3) == Point3(x=1, y=2, z=3)
    assert Mutable().items == [] and Mutable().items is not Mutable().items
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, nope=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, (), 4)  # type: ignore[call-arg]


def test_equality_hash_repr_and_immutability(constructor: str) -> None:
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert Point(1) != Point3(1) and Point(1) != (1, 0, ())  # equal only to the same type
    assert hash(Point(1, 2)) == hash(Point(1, 2)) and {Point(1), Point(1)} == {Point(1)}
    assert repr(Point3(1, 2)) == "Point3(x=1, y=2, tags=(), z=0)"
    with pytest.raises(AttributeError, match="immutable"):
        Point(1).x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del Point(1).x
    mutable = Mutable()
    mutable.items = [1]
    assert mutable == Mutable([1])
    with pytest.raises(TypeError):
        hash(mutable)
    assert Point.KIND == "point" and [f.name for f in fields(Point3)] == ["x", "y", "tags", "z"]
    assert Point(3, -4).norm() == 7 and Point.__match_args__ == ("x", "y", "tags")


def test_post_init_replace_and_pickle(constructor: str) -> None:
    checked = Checked(2)
    assert checked.double == 4  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
    with pytest.raises(ValueError, match="negative"):
        replace(checked, value=-1)  # replace goes through the constructor and its checks
    assert replace(Point3(1), z=5) == Point3(1, z=5)
    assert replace(checked, value=3).double == 6  # type: ignore[attr-defined]
    for value in (Point3(1, 2, ("a",), 3), checked, Mutable([1, 2])):
        copy = pickle.loads(pickle.dumps(value))
        assert copy == value and type(copy) is type(value)
    assert pickle.loads(pickle.dumps(checked)).double == 4


def test_a_subclass_never_inherits_a_specialized_constructor() -> None:
    _specialized(Point)
    assert Point.__init__ is not Struct.__init__

    class Later(Point, frozen=True):
        w: int = 9

    assert Later(1) == Later(1, 0, (), 9) and Later(1).w == 9


def test_an_own_hash_and_eq_are_kept() -> None:
    class Folded(Struct, frozen=True):
        name: str

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Folded) and self.name.lower() == other.name.lower()

        def __hash__(self) -> int:
            return hash(self.name.lower())

    assert Folded("A") == Folded("a") and hash(Folded("A")) == hash(Folded("a"))


def test_fields_named_like_the_constructor_s_own_names() -> None:
    # The specialized constructor's own names never clash with fields (a CMS attribute has a field "values").
    class Attribute(Struct, frozen=True):
        oid: str
        values: tuple[bytes, ...]
        _d0: int = 1

    made = [Attribute("1.2", (b"x",)) for _ in range(record.SPECIALIZE_AFTER + 2)]
    assert made[-1] == Attribute(oid="1.2", values=(b"x",)) and made[-1].values == (b"x",)
    assert made[-1]._d0 == 1
    for _ in range(record.SPECIALIZE_AFTER + 2):
        Attribute("1.2", (b"x",))
    assert Attribute("1.3", (b"y",)).values == (b"y",)
