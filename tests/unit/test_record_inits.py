"""nuseal.record_inits: the record constructors compiled ahead of time (``scripts/record-inits``) are current, are
the code that compiling their source gives, and a class takes one only for exactly its own source, with its own
default values (docs/decisions.md "Record constructors compiled ahead of time")."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from nuseal import record, record_inits
from nuseal.record import Struct, field, init_source, library_classes, write_inits

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


@pytest.mark.parametrize("source", sorted(record_inits.INITS))
def test_each_function_is_what_compiling_its_source_gives(source: str) -> None:
    ahead, fresh = record_inits.INITS[source].__code__, _compiled(source)
    for attribute in ("co_code", "co_consts", "co_names", "co_varnames", "co_argcount", "co_posonlyargcount",
                      "co_kwonlyargcount", "co_nlocals", "co_freevars", "co_cellvars"):
        assert getattr(ahead, attribute) == getattr(fresh, attribute), attribute


def test_every_library_class_that_can_be_specialized_is_in_the_table() -> None:
    missing = [cls.__qualname__ for cls in library_classes()
               if (made := init_source(cls)) is not None and made[0] not in record_inits.INITS]
    assert missing == []


def test_a_class_takes_the_table_s_constructor_from_its_first_record_with_its_own_defaults() -> None:
    class Hashes(Struct, frozen=True):  # the fields of nuseal.timestamp.client's request, other defaults
        algorithm: str
        digest: bytes
        nonce: int

    made = init_source(Hashes)
    assert made is not None and made[0] in record_inits.INITS
    first = Hashes("sha256", b"\x01", nonce=7)
    assert Hashes.__init__ is not Struct.__init__
    assert Hashes.__init__.__code__ is record_inits.INITS[made[0]].__code__
    assert Hashes.__init__.__qualname__.endswith("Hashes.__init__")
    assert first == Hashes(algorithm="sha256", digest=b"\x01", nonce=7) and first.nonce == 7
    with pytest.raises(TypeError):
        Hashes("sha256", b"\x01")  # type: ignore[call-arg]

    with_defaults = [source for source in record_inits.INITS if "=_d" in source]
    assert with_defaults  # a table entry whose defaults are stand-ins in the module
    source = with_defaults[0]
    names = source[source.index("(") + 1 : source.index(")")].split(", ")[1:]
    annotations = {name.split("=")[0]: "object" for name in names}
    namespace: dict[str, object] = {"__annotations__": annotations, "__module__": __name__}
    for name in names:
        if name.endswith("=_MISSING"):
            namespace[name.split("=")[0]] = field(default_factory=lambda: ["made"])
        elif "=" in name:
            namespace[name.split("=")[0]] = ("own default", name)
    cls = types.new_class("Shaped", (Struct,), {"frozen": True}, lambda ns: ns.update(namespace))
    made = init_source(cls)
    assert made is not None and made[0] == source
    required = [name for name in names if "=" not in name]
    value = cls(*range(len(required)))
    assert cls.__init__.__code__ is record_inits.INITS[source].__code__
    for position, name in enumerate(names):
        bare = name.split("=")[0]
        expected = position if "=" not in name else ["made"] if name.endswith("=_MISSING") else ("own default", name)
        assert getattr(value, bare) == expected, bare


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
