"""Slack: Events API and Socket Mode in, Web API out, through slack-bolt and slack-sdk.

Two translations, as for every adapter: a Slack payload → an `Inbound` (`inbound.py`), and
a neutral reply → Block Kit through the Web API (`blocks.py`, `sender.py`). `ids.py` holds
the naming shared by both directions; `manifest.py` the app manifest.
"""
