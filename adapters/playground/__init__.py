"""The local playground: the bot in a browser page, as another adapter.

Two translations, as for every adapter: a line typed in the page's composer or a card
button → an inbound (`web`), and a delivered reply → a JSON message pushed to every open
page over a WebSocket (`hub`). `router` sends every reply of every conversation here, so
the page shows the leads channel, each thread and the handoff channel at once.
"""
