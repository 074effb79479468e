"""Base classes for domain values.

Domain values are immutable and reject unknown fields, so a typo in a policy file or a
stored event is an error instead of a silently ignored key.
"""

from collections.abc import Callable, Mapping
from copy import deepcopy
from decimal import Decimal
from functools import partial
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
_REQUIRED = object()
_IMMUTABLE = (type(None), bool, int, float, str, bytes, Decimal, tuple, frozenset)


class _Layout:
    """What `trusted` needs of a class, worked out once: every field in declared order with
    its default (a placeholder for required ones), which are required, and the factories."""

    def __init__(self, cls: type[BaseModel]) -> None:
        found = cls.__pydantic_decorators__
        if (
            found.field_validators
            or found.model_validators
            or found.validators
            or found.root_validators
            or cls.__private_attributes__
            or cls.__pydantic_post_init__
        ):
            raise TypeError(f"{cls.__name__} checks or sets up its values: validate it")
        self.template: dict[str, Any] = {}
        self.required: set[str] = set()
        self.factories: list[tuple[str, Callable[[], Any]]] = []
        for name, info in cls.model_fields.items():
            if info.default_factory is not None:
                if info.default_factory_takes_validated_data:
                    raise TypeError(f"{cls.__name__}.{name}: a factory of the validated data")
                self.template[name] = _REQUIRED
                self.factories.append((name, info.default_factory))  # type: ignore[arg-type]
            elif info.is_required():
                self.template[name] = _REQUIRED
                self.required.add(name)
            elif isinstance(info.default, _IMMUTABLE) or (
                isinstance(info.default, BaseModel) and info.default.model_config.get("frozen")
            ):
                self.template[name] = info.default
            else:  # a mutable default: a copy each time, as validation makes
                self.template[name] = _REQUIRED
                self.factories.append((name, partial(deepcopy, info.default)))
        self.names = self.template.keys()


_LAYOUTS: dict[type[BaseModel], _Layout] = {}


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
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = _Layout(cls)
    given = values.keys()
    if not (given <= layout.names and layout.required <= given):
        raise TypeError(
            f"{cls.__name__}: unknown fields {sorted(given - layout.names)}, "
            f"missing {sorted(layout.required - given)}"
        )
    ordered = {**layout.template, **values}
    for name, factory in layout.factories:
        if name not in values:
            ordered[name] = factory()
    instance = _new_object(cls)
    _set_attribute(instance, "__dict__", ordered)
    _set_attribute(instance, "__pydantic_fields_set__", set(given))
    _set_attribute(instance, "__pydantic_extra__", None)
    _set_attribute(instance, "__pydantic_private__", None)
    return instance


def replaced(model: M, update: Mapping[str, Any]) -> M:
    """`model.model_copy(update=update)`, without its generic steps (three `copy.copy`
    calls, then the update written in), which cost more than the work around them on the
    paths that copy a model per event (`domain.state`, sealing's masked events). The same
    object results: the fields' values in the same order, `model_fields_set` grown by the
    updated names, extra and private values copied; like `model_copy`, nothing is
    validated."""
    copied = _new_object(type(model))
    _set_attribute(copied, "__dict__", {**model.__dict__, **update})
    extra, private = model.__pydantic_extra__, model.__pydantic_private__
    _set_attribute(copied, "__pydantic_extra__", None if extra is None else dict(extra))
    _set_attribute(copied, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    _set_attribute(copied, "__pydantic_private__", None if private is None else dict(private))
    return copied
