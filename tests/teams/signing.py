"""The card-action key the Teams unit tests sign and check buttons with (in the service it
is loaded from `SALESBOT_ACTION_SECRET` or the store; see `adapters/action_binding.py`)."""

from __future__ import annotations

from adapters.action_binding import ActionKey

KEY = ActionKey(b"teams-unit-test-action-secret")
