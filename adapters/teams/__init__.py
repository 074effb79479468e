"""Microsoft Teams, on the Bot Framework Activity protocol.

Two translations, as for every adapter: an activity → an `Inbound` (`inbound.py`), and a
neutral reply → an Adaptive Card (`cards.py`). The SDK (Microsoft 365 Agents SDK) stays
behind this package; cards are plain dicts and conversation references raw protocol JSON.
"""
