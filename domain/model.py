"""Base classes for domain values.

Domain values are immutable and reject unknown fields, so a typo in a policy file or a
stored event is an error instead of a silently ignored key.
"""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class Frozen(BaseModel):
    """An immutable value that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Sparse(Frozen):
    """A value that gained fields after values of it were first stored.

    Each field named in `ADDED_LATER` is left out of the serialised value while it holds its
    default, so a value that does not use it serialises exactly as it did before the field
    existed: a stored policy keeps its canonical JSON (and so its version hash), a stored
    event its bytes, a model file its hash.
    """

    ADDED_LATER: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_unused_later_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name, default in _later_defaults(type(self)):
                if getattr(self, name) == default:
                    data.pop(name, None)
        return data


_DEFAULTS: dict[type[Sparse], tuple[tuple[str, Any], ...]] = {}


def _later_defaults(cls: type[Sparse]) -> tuple[tuple[str, Any], ...]:
    """Each later field's default, worked out once per class rather than at every dump (a
    default factory built a new default for every comparison). The defaults are only ever
    compared with, never handed out, so one instance each is safe."""
    found = _DEFAULTS.get(cls)
    if found is None:
        fields = cls.model_fields
        found = tuple(
            (name, fields[name].get_default(call_default_factory=True))
            for name in cls.ADDED_LATER
        )
        _DEFAULTS[cls] = found
    return found
