"""The record type of the library: ``class Name(Struct, frozen=True)`` with annotated fields, spelled as
``msgspec.Struct`` is, which it replaces (issue 12, docs/decisions.md "Records").

Why hand-written: a record class must be cheap to create at import (``nuseal verify`` creates ~60 of them before
it reads a byte), which ruled out frozen dataclasses (each compiles six methods with ``exec``); msgspec's structs
are cheap, but ``import msgspec`` loads ``typing_extensions`` (installed for typer and pydantic), which loads
``inspect``, ``ast``, ``dis``, ``tokenize``, plus ``uuid``, ``platform``, ``decimal``: ~70 M instructions, a
third of what nuseal's own start-up costs, for a feature set the library uses a small part of. This base class
generates nothing: ``__init_subclass__`` records the field names and defaults once, and the methods below read
them. What it keeps of the structs: positional and keyword construction, defaults and ``field(default_factory=)``,
``__post_init__``, equality by type and fields, hashing of frozen records (and none for mutable ones), the repr
``Name(a=1, b=2)``, immutability of frozen records (``AttributeError``), pickling, ``__match_args__``, field
inheritance, ``ClassVar`` class attributes. Instances keep their fields in ``__dict__`` (a subclass may set other
attributes through :func:`force_setattr`, as ``NuGetVersion`` does with its sort key).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform, overload

if TYPE_CHECKING:
    from pathlib import Path

_T = TypeVar("_T")
_R = TypeVar("_R", bound="Struct")
_MISSING: Any = object()


class _Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None) -> None:
        self.default = default
        self.default_factory = default_factory


@overload
def field(*, default: _T) -> _T: ...
@overload
def field(*, default_factory: Callable[[], _T]) -> _T: ...
def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field's default (``default=``) or a callable that makes a fresh one per record (``default_factory=``)."""
    return _Field(default, default_factory)


class FieldInfo:
    """What :func:`fields` reports of one field."""

    __slots__ = ("default", "default_factory", "name")

    def __init__(self, name: str, default: Any, default_factory: Callable[[], Any] | None) -> None:
        self.name, self.default, self.default_factory = name, default, default_factory

    @property
    def required(self) -> bool:
        return self.default is _MISSING and self.default_factory is None


def _is_class_var(annotation: object) -> bool:
    if isinstance(annotation, str):  # postponed annotations (``from __future__ import annotations``)
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or getattr(annotation, "__origin__", None) is ClassVar


@dataclass_transform(field_specifiers=(field,))
class Struct:
    """Base of every record; subclass with ``frozen=True`` for an immutable, hashable record."""

    __slots__ = ()
    __record_fields__: ClassVar[tuple[str, ...]] = ()
    __record_defaults__: ClassVar[dict[str, Any]] = {}
    __record_factories__: ClassVar[dict[str, Callable[[], Any]]] = {}
    __record_frozen__: ClassVar[bool] = False
    __record_post_init__: ClassVar[bool] = False

    def __init_subclass__(cls, *, frozen: bool = False, dict: bool = False, **kwargs: Any) -> None:
        # ``dict`` is accepted for the spelling msgspec had (``dict=True``: attributes besides the fields); every
        # record has a ``__dict__`` here.
        super().__init_subclass__(**kwargs)
        names = list(cls.__record_fields__)
        defaults = cls.__record_defaults__.copy()
        factories = cls.__record_factories__.copy()
        # The class's own annotations (inspect.get_annotations would import inspect, which this module avoids).
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
            if _is_class_var(annotation):
                continue
            if name not in names:
                names.append(name)
            value = cls.__dict__.get(name, _MISSING)
            defaults.pop(name, None)
            factories.pop(name, None)
            if isinstance(value, _Field):
                delattr(cls, name)
                if value.default_factory is not None:
                    factories[name] = value.default_factory
                elif value.default is not _MISSING:
                    defaults[name] = value.default
            elif value is not _MISSING:
                defaults[name] = value
        cls.__record_fields__ = tuple(names)
        cls.__record_defaults__ = defaults
        cls.__record_factories__ = factories
        cls.__record_frozen__ = frozen or cls.__record_frozen__
        setattr(cls, "__match_args__", cls.__record_fields__)  # noqa: B010 (not declared on the base)
        cls.__record_post_init__ = hasattr(cls, "__post_init__")
        if "__init__" not in cls.__dict__:  # not a specialized __init__ inherited from a base with other fields
            cls.__init__ = Struct.__init__  # type: ignore[method-assign]
        if cls.__dict__.get("__hash__") is None:  # a class's own __hash__ (with its own __eq__) stays
            cls.__hash__ = _hash if cls.__record_frozen__ else None  # type: ignore[method-assign, assignment]
        if cls.__record_frozen__:
            cls.__setattr__ = _refuse_setattr  # type: ignore[method-assign, assignment]
            cls.__delattr__ = _refuse_delattr  # type: ignore[method-assign, assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _generic_init(self, *args, **kwargs)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self.__dict__, other.__dict__
        return all(mine[name] == theirs[name] for name in self.__record_fields__)

    def __repr__(self) -> str:
        values = self.__dict__
        inner = ", ".join(f"{name}={values[name]!r}" for name in self.__record_fields__)
        return f"{type(self).__name__}({inner})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as the class and its state: unpickling restores the fields (and any attribute a subclass set
        # with force_setattr) without running __init__ or the frozen __setattr__.
        return (_restore, (type(self), self.__dict__.copy()))


#: How many records of a class the generic constructor makes before the class gets its own (see _specialize).
SPECIALIZE_AFTER = 8
_made: dict[type[Struct], int] = {}
#: The constructors compiled ahead of time (``nuseal.record_inits``), by layout; loaded on first use.
_inits: dict[Layout, Any] | None = None


def _generic_init(self: Struct, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names = cls.__record_fields__
    if len(args) > len(names):
        raise TypeError(f"{cls.__name__}: {len(args)} positional arguments for {len(names)} fields")
    values = self.__dict__
    values.update(zip(names, args, strict=False))
    if len(args) < len(names) or kwargs:
        for name in names[len(args):]:
            if name in kwargs:
                values[name] = kwargs.pop(name)
            elif name in cls.__record_defaults__:
                values[name] = cls.__record_defaults__[name]
            elif name in cls.__record_factories__:
                values[name] = cls.__record_factories__[name]()
            else:
                raise TypeError(f"{cls.__name__}: missing required argument '{name}'")
        if kwargs:
            raise TypeError(f"{cls.__name__}: unexpected keyword argument '{next(iter(kwargs))}'")
    if cls.__record_post_init__:
        self.__post_init__()  # type: ignore[attr-defined]
    made = _made[cls] = _made.get(cls, 0) + 1
    if made == 1 or made == SPECIALIZE_AFTER:
        _specialize(cls, compiling=made == SPECIALIZE_AFTER)


#: What a specialized constructor's code depends on: the field names in order, each field's kind (``r`` required,
#: ``d`` with a default, ``f`` with a factory) and whether the class has ``__post_init__``.
Layout = tuple[tuple[str, ...], str, bool]


def layout(cls: type[Struct]) -> Layout | None:
    """The layout of ``cls``'s specialized constructor; ``None`` when only the generic constructor takes the class."""
    names = cls.__record_fields__
    if {"__record", "__values", "_MISSING"} & set(names) or any(name.startswith(("_d", "_f")) for name in names):
        return None  # a field would shadow a name the generated code uses
    defaults, factories = cls.__record_defaults__, cls.__record_factories__
    kinds = "".join("d" if name in defaults else "f" if name in factories else "r" for name in names)
    if "dr" in kinds or "fr" in kinds:
        return None  # a required field after one with a default: only the generic constructor takes that
    return names, kinds, cls.__record_post_init__


def init_source(shape: Layout) -> str:
    """The source of the constructor of layout ``shape``: it reads the default values as ``_d<index>``, the
    factories as ``_f<index>`` and ``_MISSING`` from its globals."""
    names, kinds, post_init = shape
    params, body = [], []
    for index, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if kind == "d":
            params.append(f"{name}=_d{index}")
        elif kind == "f":
            params.append(f"{name}=_MISSING")
            body.append(f"    if {name} is _MISSING: {name} = _f{index}()")
        else:
            params.append(name)
        body.append(f"    __values[{name!r}] = {name}")
    if post_init:
        body.append("    __record.__post_init__()")
    return (f"def __init__(__record, {', '.join(params)}):\n    __values = __record.__dict__\n" + "\n".join(body)
            + "\n")


def _specialize(cls: type[Struct], *, compiling: bool) -> None:
    """Give a class a constructor of its own, about twice as fast as the generic one: the function compiled ahead
    of time for exactly its layout (``nuseal.record_inits``) from its first record, or, for a class that table does
    not hold, one compiled now once it made ``SPECIALIZE_AFTER`` records (``compiling``). Compiling is not done at
    class creation, where compiling code for every class is what made dataclasses slow to import; each compile costs
    ~0.1-0.4 ms, which only a class that makes many records (a batch of packages) earns back."""
    if cls.__dict__.get("__init__") is not Struct.__init__:
        return
    shape = layout(cls)
    if shape is None:
        return
    ahead = _compiled_ahead().get(shape)
    if ahead is None and not compiling:
        return
    names, kinds, _ = shape
    defaults, factories = cls.__record_defaults__, cls.__record_factories__
    namespace: dict[str, Any] = {"_MISSING": _MISSING}
    argdefs: list[Any] = []
    for index, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if kind == "d":
            namespace[f"_d{index}"] = defaults[name]
            argdefs.append(defaults[name])
        elif kind == "f":
            namespace[f"_f{index}"] = factories[name]
            argdefs.append(_MISSING)
    if ahead is not None:
        # The code that compiling init_source(shape) gives (tests/unit/test_record_inits.py compares them), with the
        # names it reads and the default values its ``_d<index>`` would have evaluated to.
        init = types.FunctionType(ahead.__code__, namespace, "__init__", tuple(argdefs))
    else:
        exec(init_source(shape), namespace)  # the source is made from field names, which are identifiers
        init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]


def _compiled_ahead() -> dict[Layout, Any]:
    global _inits
    if _inits is None:
        try:
            from nuseal import record_inits
        except ImportError:  # a source tree without the generated module: constructors are compiled as before
            _inits = {}
        else:
            _inits = record_inits.INITS
    return _inits


def library_classes() -> list[type[Struct]]:
    """Every record class of the nuseal package (each of its modules is imported), for :func:`write_inits`."""
    import importlib
    import pkgutil

    import nuseal

    for module in pkgutil.walk_packages(nuseal.__path__, "nuseal."):
        # Not the console entry (it runs the CLI) nor alembic's migration scripts (they run only under alembic).
        if module.name != "nuseal.__main__" and not module.name.startswith("nuseal.server.db.migrations"):
            importlib.import_module(module.name)
    found: list[type[Struct]] = []
    pending = list(Struct.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("nuseal.") and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


def write_inits(path: Path, classes: Iterable[type[Struct]]) -> int:
    """Write ``nuseal/record_inits.py``: the constructors of ``classes`` as :func:`_specialize` would compile
    them, so that the interpreter compiles them once with the module (into its ``.pyc``) instead of once per
    process. Returns how many distinct constructors it holds."""
    import re

    shapes = sorted({shape for cls in classes if (shape := layout(cls)) is not None})
    sources = [init_source(shape) for shape in shapes]
    placeholders = sorted({int(name[2:]) for source in sources for name in re.findall(r"\b_d\d+\b", source)})
    lines = ['"""Generated by ``scripts/record-inits`` (``nuseal.record.write_inits``); do not edit. The record',
             "classes' constructors by layout (field names, kinds, ``__post_init__``), compiled with this module",
             "instead of in every process; ``nuseal.record._specialize`` gives each function the class's own",
             'defaults and factories."""', "",
             "# ruff: noqa", "# fmt: off", "",
             "# Stand-ins while the definitions below run: each function gets the real default values when a class",
             "# takes it.",
             " = ".join(["_MISSING", *(f"_d{index}" for index in placeholders), "None"]), "", "INITS: dict = {}", ""]
    for shape, source in zip(shapes, sources, strict=True):
        lines.append(source.rstrip("\n"))
        lines.append(f"INITS[{shape!r}] = __init__")
        lines.append("")
    path.write_text("\n".join(lines))
    return len(shapes)


def _restore(cls: type[_R], state: dict[str, Any]) -> _R:
    record = cls.__new__(cls)
    record.__dict__.update(state)
    return record


def _refuse_setattr(self: Struct, name: str, value: object) -> None:
    raise AttributeError(f"immutable type: '{type(self).__name__}'")


def _refuse_delattr(self: Struct, name: str) -> None:
    raise AttributeError(f"immutable type: '{type(self).__name__}'")


def _hash(self: Struct) -> int:
    values = self.__dict__
    return hash(tuple(values[name] for name in self.__record_fields__))


def replace(record: _R, /, **changes: Any) -> _R:
    """A copy of ``record`` with ``changes`` (made through the constructor, so ``__post_init__`` checks them)."""
    values = record.__dict__
    merged = {name: values[name] for name in record.__record_fields__}
    merged.update(changes)
    return type(record)(**merged)


def fields(record: Struct | type[Struct]) -> tuple[FieldInfo, ...]:
    """The fields of a record or record class, in order."""
    cls = record if isinstance(record, type) else type(record)
    return tuple(FieldInfo(name, cls.__record_defaults__.get(name, _MISSING), cls.__record_factories__.get(name))
                 for name in cls.__record_fields__)


def force_setattr(record: Struct, name: str, value: object) -> None:
    """Set an attribute of a frozen record (for ``__post_init__`` normalizing a field or caching a derived value)."""
    object.__setattr__(record, name, value)
