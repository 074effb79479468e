"""The domain's error tree.

    DomainError                  anything the core refuses, always with a user-facing message
    ├── PolicyError              a policy file that cannot be loaded or is invalid
    ├── QuoteError               a quote request the rules refuse (bad quantity, discount, SKU)
    ├── RenderError              a template that cannot be rendered safely
    └── CommandError             a command line a user typed that does not parse

Messages are complete sentences meant for the person who caused them; callers print
`str(error)` and never a traceback.
"""


class DomainError(Exception):
    """Base of every error the functional core raises on purpose."""


class PolicyError(DomainError):
    """A policy file that cannot be loaded, parsed or validated."""


class QuoteError(DomainError):
    """A quote request that the catalog or discount rules refuse."""


class RenderError(DomainError):
    """A template that cannot be rendered with the values at hand."""


class CommandError(DomainError):
    """A command that does not parse; the message includes the usage line."""
