"""The terminal as a platform: `salesbot chat` renders neutral replies as plain text.

Two translations, as for every adapter: a typed line → an inbound (done by `bot/chat.py`,
which owns the session), and a reply → text with numbered buttons (here).
"""
