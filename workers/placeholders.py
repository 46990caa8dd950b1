"""The placeholders of a GraphQL origin's body (doo: %ORGANIZATION_ID%, %EVENT_ID%,
%ORDER_ID%, %ATTENDEE_ID%): which values a delivery gives them, and how they are put in.

A value goes in JSON-escaped, inside the string the placeholder stands in, so an id can never
break out of its string and change the query."""

import json


def values_for(row, entity):
    """Values for the placeholders of ``origin.body``, from the trigger behind a delivery."""
    values = {"%ORGANIZATION_ID%": str(row.organization_id), "%EVENT_ID%": row.event_id}
    if row.entity_kind == "order":
        values["%ORDER_ID%"] = row.entity_id
    elif row.entity_kind == "attendee":
        values["%ATTENDEE_ID%"] = row.entity_id
        values["%ORDER_ID%"] = str(entity.get("order_id"))
    return values


def fill(body, values):
    """Put each value into the JSON-string body, escaped so it cannot break out of its string."""
    for placeholder, value in values.items():
        if value is not None:
            body = body.replace(placeholder, json.dumps(str(value))[1:-1])
    return body
