"""Base classes for domain values.

Domain values are immutable and reject unknown fields, so a typo in a policy file or a
stored event is an error instead of a silently ignored key.
"""

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """An immutable value that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
