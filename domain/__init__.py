"""The functional core of salesbot.

Pure, typed and synchronous: no I/O, no clocks, no logging, no platform words.
Everything the bot decides is computed here from (state, inbound, policy, now) so that
any decision can be replayed and explained exactly. `bot/` performs what it decides.
"""

GENERATOR = "salesbot/0.1.0"
"""Generator version stamped into every stored artifact next to its schema version."""
