"""One complete trigger per entity kind: the body of ``POST /v1/triggers``.

The OpenAPI document shows these as the request examples, README.rst shows the same bodies,
and the tests load each through ``validate_trigger`` (so none of them can rot). Fields
beyond the required ones are doo's documented ones (see schemas/entities.py); any other
field the platform adds is passed to the receiver as sent.
"""

EVENT_TRIGGER = {
    "type": "event_created",
    "organization_id": 1,
    "trigger_id": "event-42-created",
    "occurred_at": "2026-05-04T09:30:00Z",
    "entity": {
        "id": 42,
        "status": "live",
        "title": "Summer Festival",
        "organizer_name": "Acme Events",
        "start_date": "2026-07-18 18:00:00",
        "end_date": "2026-07-18 23:00:00",
        "venue_name": "Alte Feuerwache",
        "external_user_id": "crm-user-4711",
        "address": {"street_address": "Brückenstraße 2", "city": "Mannheim", "postcode": "68167",
                    "country": "Germany"},
        "ticket_categories": [{"id": 7, "name": "Early bird", "price": 19.5, "amount": 200}],
    },
}

ORDER_TRIGGER = {
    "type": "order_created",
    "organization_id": 1,
    "trigger_id": "order-1001-created",
    "occurred_at": "2026-05-04T10:02:11Z",
    "entity": {
        "event": {"id": 42, "title": "Summer Festival", "start_date": "2026-07-18 18:00:00"},
        "order_details": {
            "id": 1001,
            "status": "active",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "attendees": [{"id": 5001, "status": "active", "first_name": "Ada", "last_name": "Lovelace",
                           "email": "ada@example.com",
                           "ticket": {"id": 9001, "status": "valid", "event_ticket_id": 7}}],
            "payment": {"amount": "19.50", "method": "credit_card", "status": "paid"},
        },
        "external_customer_id": "crm-customer-17",
    },
}

ATTENDEE_TRIGGER = {
    "type": "attendee_checkin",
    "organization_id": 1,
    "trigger_id": "attendee-5001-checkin",
    "occurred_at": "2026-07-18T18:12:40Z",
    "entity": {
        "id": 5001,
        "status": "active",
        "order_id": 1001,
        "event_id": 42,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "ticket": {"id": 9001, "status": "checked", "event_ticket_id": 7},
    },
}

#: entity kind -> a complete trigger carrying an entity of that kind
TRIGGER_EXAMPLES = {"event": EVENT_TRIGGER, "order": ORDER_TRIGGER, "attendee": ATTENDEE_TRIGGER}
