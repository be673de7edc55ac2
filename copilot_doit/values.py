"""Small value objects, declared as dataclasses are (annotated fields, defaults, `field(...)`), without the
`dataclasses` module.

Why: every command starts by importing the modules a no-op needs, and there `dataclasses` cost ~37 ms of a
~0.23 s one-workload no-op on this machine (issue 12, P1): ~13 ms to import it (it imports `inspect`, which
imports `ast`, `dis`, `tokenize`) and ~1.2 ms per class, as it compiles each class's `__init__`, `__eq__`,
`__repr__`, ... from generated source. Here a class gets generic methods that read its field table: making
the class costs microseconds, making an instance ~1-2 µs more than a dataclass's.

What is kept of dataclasses' behaviour, and all the code uses: positional or keyword `__init__` in field
order, `default` and `default_factory`, `init=False` (set from its default or factory, not an argument),
`repr=False` and `compare=False`; `__eq__` between instances of the same class only; `frozen=True` (no
assignment after `__init__`, hashable) while a mutable class is unhashable, as a dataclass with `eq` is;
`replace(obj, **changes)`. Not supported (and not used): inheritance between value classes, `ClassVar`,
`__post_init__`, `InitVar`, keyword-only fields, ordering.
"""
from __future__ import annotations

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen value."""


class field:
    """A field's options, as `dataclasses.field` takes them."""

    __slots__ = ("name", "default", "default_factory", "init", "repr", "compare")

    def __init__(self, *, default=_MISSING, default_factory=None, init: bool = True, repr: bool = True,
                 compare: bool = True):
        if default is not _MISSING and default_factory is not None:
            raise ValueError("a field takes a default or a default_factory, not both")
        self.name = ""
        self.default, self.default_factory = default, default_factory
        self.init, self.repr, self.compare = init, repr, compare

    def initial(self, cls_name: str):
        if self.default_factory is not None:
            return self.default_factory()
        if self.default is _MISSING:
            raise TypeError(f"{cls_name}() missing required argument: '{self.name}'")
        return self.default


def value(cls=None, *, frozen: bool = False):
    """Class decorator: `@value` or `@value(frozen=True)`."""
    def wrap(cls):
        fields = []
        for name in cls.__dict__.get("__annotations__", {}):
            declared = cls.__dict__.get(name, _MISSING)
            f = declared if isinstance(declared, field) else field(default=declared)
            f.name = name
            if isinstance(declared, field):   # the class attribute becomes the default, as in dataclasses
                if f.default is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, f.default)
            fields.append(f)
        init = [f for f in fields if f.init]
        seen_default = False
        for f in init:
            has_default = f.default is not _MISSING or f.default_factory is not None
            if seen_default and not has_default:
                raise TypeError(f"{cls.__name__}: non-default field '{f.name}' follows a default field")
            seen_default = seen_default or has_default
        own = set(cls.__dict__)
        if own & {"__init__", "__eq__", "__hash__", "__setattr__", "__delattr__"}:
            raise TypeError(f"{cls.__name__}: a value class gets __init__, __eq__, __hash__ and (frozen) "
                            "__setattr__ from @value; define them on a plain class instead")
        cls.__value_fields__ = tuple(fields)
        cls.__init__ = _make_init(cls.__name__, tuple(init), tuple(f for f in fields if not f.init))
        if "__repr__" not in own:
            cls.__repr__ = _repr
        cls.__eq__ = _eq
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr
            cls.__hash__ = _hash
        else:
            cls.__hash__ = None   # mutable and compared by value: unhashable, as a dataclass with eq
        return cls
    return wrap if cls is None else wrap(cls)


def _make_init(cls_name: str, init: tuple, rest: tuple):
    set_field = object.__setattr__   # also on a frozen value

    def __init__(self, *args, **kwargs):
        if len(args) > len(init):
            raise TypeError(f"{cls_name}() takes {len(init)} positional arguments but {len(args)} were given")
        for f, arg in zip(init, args):
            if f.name in kwargs:
                raise TypeError(f"{cls_name}() got multiple values for argument '{f.name}'")
            set_field(self, f.name, arg)
        for f in init[len(args):]:
            set_field(self, f.name, kwargs.pop(f.name) if f.name in kwargs else f.initial(cls_name))
        if kwargs:
            raise TypeError(f"{cls_name}() got an unexpected keyword argument '{next(iter(kwargs))}'")
        for f in rest:
            set_field(self, f.name, f.initial(cls_name))
    return __init__


def _compared(obj) -> tuple:
    return tuple(getattr(obj, f.name) for f in obj.__value_fields__ if f.compare)


def _repr(self) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__value_fields__ if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _compared(self) == _compared(other)


def _hash(self) -> int:
    return hash(_compared(self))


def _frozen_setattr(self, name, _value):
    raise FrozenInstanceError(f"cannot assign to field '{name}' of a frozen {type(self).__name__}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field '{name}' of a frozen {type(self).__name__}")


def replace(obj, **changes):
    """A copy of `obj` with `changes` (fields given to `__init__` only, as `dataclasses.replace`)."""
    args = {}
    for f in obj.__value_fields__:
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field '{f.name}' is not set by __init__ and cannot be replaced")
            continue
        args[f.name] = changes.pop(f.name) if f.name in changes else getattr(obj, f.name)
    if changes:
        raise TypeError(f"{type(obj).__name__} has no field '{next(iter(changes))}'")
    return type(obj)(**args)
