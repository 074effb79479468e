"""Translations between outside systems (Slack, Teams, the playground, the lead feed, CRMs)
and the domain's platform-neutral inbounds and replies. Adapters decide nothing."""
