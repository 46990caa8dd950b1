"""doo-webhooks: webhook delivery for the doo event-ticketing platform."""

__version__ = "0.1.0"
