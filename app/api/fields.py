"""Request fields shared by the operations endpoints."""

import datetime
import zoneinfo

from marshmallow import ValidationError
from marshmallow import fields

UTC = datetime.timezone.utc


class LedgerDateTime(fields.DateTime):
    """An ISO 8601 / RFC 3339 date-time, loaded as naive UTC (how the ledger stores time).

    A value without an offset is read in ``zone`` (UTC unless told otherwise).
    """

    def __init__(self, zone=UTC, **kwargs):
        self.zone = zone
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        when = super()._deserialize(value, attr, data, **kwargs)
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.zone)
        try:
            return when.astimezone(UTC).replace(tzinfo=None)
        except (OverflowError, ValueError):
            raise ValidationError("Not a date-time this service can represent.") from None


def cet():
    """doo documents initialization times in CET: read as Central European (summer) time."""
    return zoneinfo.ZoneInfo("Europe/Berlin")
