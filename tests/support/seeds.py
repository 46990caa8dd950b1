"""The seeds' configuration objects (the original service's seed cases), for the API tests."""

import copy

SEED_SECRET = "super-strong-secret"

_SEED_DEFAULT = {
    "name": "My Test Webhook",
    "description": "Webhook for testing all the hook types",
    "hooks": [
        {"type": hook_type, "method": "POST", "endpoint": "https://requestb.in/123"}
        for hook_type in ("event_created", "event_removed", "event_updated", "order_created",
                          "order_removed", "order_updated", "order_cancelled")
    ],
    "authentication": {
        "grant_type": "client_credentials",
        "endpoint": "https://requestb.in/123",
        "credentials": {"client_id": "doo", "client_secret": SEED_SECRET},
        "header_format": "Authorization",
        "header_value_format": "Bearer %ACCESS_TOKEN%",
    },
}

EVENT_BODY = ("{\"operationName\":\"EventShort\",\"variables\":{\"id\":\"%EVENT_ID%\"},"
              "\"query\":\"query EventShort($id: ID!) {\\n event(id: $id) {\\n title\\n }\\n}\\n\"}")
ORDER_BODY = ("{\"operationName\":\"OrderShort\",\"variables\":{\"id\":\"%ORDER_ID%\"},"
              "\"query\":\"query OrderShort($id: ID!) {\\n  order(id: $id) {\\n    hash\\n  }\\n}\\n\"}")


def seed_config():
    """The seed's "Default case" configuration object (a fresh copy)."""
    return copy.deepcopy(_SEED_DEFAULT)


def graphql_hook(hook_type, body, endpoint="http://requestbin.net/r/123"):
    return {"type": hook_type, "method": "POST",
            "origin": {"method": "POST", "endpoint": "https://gql.doo.net", "body": body},
            "endpoint": endpoint}


def graphql_config():
    """The seed's GraphQL case: bodies are escaped JSON strings with %EVENT_ID% / %ORDER_ID%."""
    hooks = [graphql_hook(t, EVENT_BODY) for t in ("event_created", "event_removed", "event_updated")]
    hooks += [graphql_hook(t, ORDER_BODY) for t in ("order_cancelled", "order_created", "order_removed",
                                                     "order_updated")]
    return {
        "name": "Sample-Org",
        "description": "Sample-Description",
        "hooks": hooks,
        "authentication": {
            "grant_type": "client_credentials",
            "endpoint": "http://requestbin.net/r/456",
            "credentials": {"client_id": "doo", "client_secret": SEED_SECRET},
            "header_format": "Authorization",
            "header_value_format": "Bearer %ACCESS_TOKEN%",
        },
    }
