"""Persistence of events, deliveries, the outbox and tickets behind small ports.

Depends on `domain` types only."""
