"""nuseal.record_inits: the record constructors compiled ahead of time (``scripts/record-inits``) are current, are
the code that compiling their layout's source gives, and a class takes one only for exactly its own layout, with its
own default values and factories (docs/decisions.md "Code and data generated ahead of time instead of at every
start-up")."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from nuseal import record, record_inits
from nuseal.record import Struct, field, init_source, layout, library_classes, write_inits

_MODULE = Path(record_inits.__file__)


def test_the_table_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / "record_inits.py"
    count = write_inits(fresh, library_classes())
    assert fresh.read_text() == _MODULE.read_text(), "run scripts/record-inits and commit src/nuseal/record_inits.py"
    assert count == len(record_inits.INITS) > 40


def _compiled(source: str) -> types.CodeType:
    namespace: dict[str, object] = {"_MISSING": None, **{f"_d{index}": None for index in range(64)}}
    exec(compile(source, "<string>", "exec"), namespace)
    function = namespace["__init__"]
    assert isinstance(function, types.FunctionType)
    return function.__code__


@pytest.mark.parametrize("shape", sorted(record_inits.INITS))
def test_each_function_is_what_compiling_its_source_gives(shape: record.Layout) -> None:
    ahead, fresh = record_inits.INITS[shape].__code__, _compiled(init_source(shape))
    for attribute in ("co_code", "co_consts", "co_names", "co_varnames", "co_argcount", "co_posonlyargcount",
                      "co_kwonlyargcount", "co_nlocals", "co_freevars", "co_cellvars"):
        assert getattr(ahead, attribute) == getattr(fresh, attribute), attribute


def test_every_library_class_that_can_be_specialized_is_in_the_table() -> None:
    missing = [cls.__qualname__ for cls in library_classes()
               if (shape := layout(cls)) is not None and shape not in record_inits.INITS]
    assert missing == []


def test_a_class_takes_the_table_s_constructor_from_its_first_record_with_its_own_defaults() -> None:
    class Hashes(Struct, frozen=True):  # the fields of nuseal.timestamp.client's request, other defaults
        algorithm: str
        digest: bytes
        nonce: int

    shape = layout(Hashes)
    assert shape is not None and shape in record_inits.INITS
    first = Hashes("sha256", b"\x01", nonce=7)
    assert Hashes.__init__ is not Struct.__init__
    assert Hashes.__init__.__code__ is record_inits.INITS[shape].__code__
    assert Hashes.__init__.__qualname__.endswith("Hashes.__init__")
    assert first == Hashes(algorithm="sha256", digest=b"\x01", nonce=7) and first.nonce == 7
    with pytest.raises(TypeError):
        Hashes("sha256", b"\x01")  # type: ignore[call-arg]

    mixed = [shape for shape in record_inits.INITS if "d" in shape[1] and "f" in shape[1]]
    assert mixed  # a table entry with defaults (stand-ins in the module) and factories
    shape = mixed[0]
    names, kinds, _ = shape
    namespace: dict[str, object] = {"__annotations__": dict.fromkeys(names, "object"), "__module__": __name__}
    for name, kind in zip(names, kinds, strict=True):
        if kind == "f":
            namespace[name] = field(default_factory=lambda: ["made"])
        elif kind == "d":
            namespace[name] = ("own default", name)
    if shape[2]:
        namespace["__post_init__"] = lambda self: None
    cls = types.new_class("Shaped", (Struct,), {"frozen": True}, lambda ns: ns.update(namespace))
    assert layout(cls) == shape
    value = cls(*range(kinds.count("r")))
    assert cls.__init__.__code__ is record_inits.INITS[shape].__code__
    for position, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        expected = position if kind == "r" else ["made"] if kind == "f" else ("own default", name)
        assert getattr(value, name) == expected, name


def test_without_the_table_a_class_compiles_its_constructor_after_specialize_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "_inits", {})

    class Hashes(Struct, frozen=True):
        algorithm: str
        digest: bytes
        nonce: int

    for count in range(1, record.SPECIALIZE_AFTER + 1):
        assert Hashes.__init__ is Struct.__init__
        assert Hashes("sha256", b"\x01", count).nonce == count
    assert Hashes.__init__ is not Struct.__init__
    assert Hashes.__init__.__code__.co_filename == "<string>"
    assert Hashes("a", b"b", 3) == Hashes(algorithm="a", digest=b"b", nonce=3)
