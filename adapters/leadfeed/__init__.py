"""The lead feed: leads from web forms and CRMs arrive over HTTP (`web`), and the bot's
replies to the prospect go back out over HTTP, signed (`reply`)."""
