"""Base classes for domain values.

Domain values are immutable and reject unknown fields, so a typo in a policy file or a
stored event is an error instead of a silently ignored key.
"""

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """An immutable value that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Sparse(Frozen):
    """A value that gained fields after values of it were first stored.

    Each field named in `ADDED_LATER` is left out of the serialised value while it holds its
    default, so a value that does not use it serialises exactly as it did before the field
    existed: a stored policy keeps its canonical JSON (and so its version hash), a stored
    event its bytes, a model file its hash.

    The leaving out is each such field's `exclude_if`, set once per class when the class is
    made, so pydantic's compiled serialiser asks only about those fields. A model-wide wrap
    serialiser did the same through Python at every dump of every instance, nested ones
    included: a third of an event's serialisation time.
    """

    ADDED_LATER: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        later = dict(_later_defaults(cls))
        changed = False
        for name, info in cls.model_fields.items():
            if name in later:
                rule = info.exclude_if
                if not (isinstance(rule, _EqualsDefault) and rule.default == later[name]):
                    info.exclude_if = _EqualsDefault(later[name])
                    changed = True
            elif isinstance(info.exclude_if, _EqualsDefault):
                # Inherited from a parent that added it later; this class always had it.
                info.exclude_if = None
                changed = True
        if changed:
            cls.model_rebuild(force=True)


class _EqualsDefault:
    """`exclude_if` for a later field: true while the value is the field's default."""

    __slots__ = ("default",)

    def __init__(self, default: Any) -> None:
        self.default = default

    def __call__(self, value: Any) -> bool:
        return bool(value == self.default)


_DEFAULTS: dict[type[Sparse], tuple[tuple[str, Any], ...]] = {}


def _later_defaults(cls: type[Sparse]) -> tuple[tuple[str, Any], ...]:
    """Each later field's default, worked out once per class rather than at every dump (a
    default factory built a new default for every comparison). The defaults are only ever
    compared with, never handed out, so one instance each is safe."""
    found = _DEFAULTS.get(cls)
    if found is None:
        fields = cls.model_fields
        found = tuple(
            (name, fields[name].get_default(call_default_factory=True)) for name in cls.ADDED_LATER
        )
        _DEFAULTS[cls] = found
    return found


M = TypeVar("M", bound=BaseModel)

_new_object = object.__new__
_set_attribute = object.__setattr__
_LAYOUTS: dict[type[BaseModel], tuple[tuple[str, ...], dict[str, Any]]] = {}


def _layout(cls: type[BaseModel]) -> tuple[tuple[str, ...], dict[str, Any]]:
    found = _LAYOUTS.get(cls)
    if found is None:
        names = tuple(cls.model_fields)
        fields = cls.model_fields
        found = _LAYOUTS[cls] = (names, {name: fields[name] for name in names})
    return found


def trusted(cls: type[M], /, **values: Any) -> M:
    """`cls(**values)` without validating `values`: for a value the domain builds from parts
    that are already valid and of exactly the declared types (integers as `int`, tuples as
    `tuple`, nested models as instances), on the paths every decision takes. Validation
    costs 2–5 µs a model there and checks nothing it could find wrong; the edges (inbounds,
    policies, stored events) still validate everything. The instance is the one validation
    builds: the fields in declared order, defaults filled in (factories called), the fields
    set being the names given. Not for classes with validators of their own.
    `tests/unit/test_trusted_values.py` holds every decision's events equal to their
    validated selves."""
    names, fields = _layout(cls)
    if len(values) == len(names):
        ordered = {name: values[name] for name in names}
    else:
        if not values.keys() <= fields.keys():
            raise TypeError(f"{cls.__name__} has no field {sorted(values.keys() - fields.keys())}")
        ordered = {
            name: values[name]
            if name in values
            else fields[name].get_default(call_default_factory=True)
            for name in names
        }
    instance = _new_object(cls)
    _set_attribute(instance, "__dict__", ordered)
    _set_attribute(instance, "__pydantic_fields_set__", set(values))
    _set_attribute(instance, "__pydantic_extra__", None)
    _set_attribute(instance, "__pydantic_private__", None)
    return instance
