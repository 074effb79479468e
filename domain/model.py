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
            fields = type(self).model_fields
            for name in self.ADDED_LATER:
                if getattr(self, name) == fields[name].get_default(call_default_factory=True):
                    data.pop(name, None)
        return data
