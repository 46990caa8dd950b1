"""The API against its own OpenAPI document, fuzzed by schemathesis (SQLite only).

Every operation is fuzzed twice: as a seeded organizer (x-api-key and Bearer token, the
platform key for POST /v1/triggers), with path parameters steered now and then to the
tenant's real team, group and trigger so that requests reach past auth and membership; and
anonymously. Each answer must be no server error and must conform to the document: status
code, content type, headers and body schema.

The run is derandomized (the same cases every time) with 30 examples per operation and
mode. To explore further: DOO_WEBHOOKS_TEST_FUZZ_RANDOM=1 DOO_WEBHOOKS_TEST_FUZZ_EXAMPLES=300.
"""

import json
import os
import types

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.generation import GenerationMode

from app import create_app
from ground.settings import from_env
from schemas.types import RESOURCES
from schemas.types import TYPES
from storage import triggers
from storage.db import utcnow
from storage.migrate import upgrade
from tests.support.api import RecordingPublisher
from tests.support.api import create_platform_key
from tests.support.seeds import EVENT_BODY
from tests.support.seeds import graphql_config
from tests.support.seeds import seed_config
from tests.support.tenants import new_tenant
from workers.fanout import fan_out

TEST_KEY = "LQwtSIAHezKh40ehoYvtu0Me8cfhWcc7LuQq-QFGc2Q="  # a valid Fernet key, for tests only

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]

OPERATIONS = [
    ("POST", "/v1/oauth"),
    ("GET", "/v1/organizers/current/organizations"),
    ("POST", "/v1/team/{team_id}/webhooks"),
    ("GET", "/v1/team/{team_id}/webhooks"),
    ("GET", "/v1/webhooks/{group_id}"),
    ("PUT", "/v1/webhooks/{group_id}"),
    ("DELETE", "/v1/webhooks/{group_id}"),
    ("POST", "/v1/webhooks/{group_id}/secret/rotate"),
    ("POST", "/v1/triggers"),
    ("GET", "/v1/triggers/{trigger_id}"),
    ("GET", "/v1/webhooks/{group_id}/deliveries"),
    ("GET", "/v1/deliveries/{delivery_id}"),
    ("POST", "/v1/deliveries/{delivery_id}/redeliver"),
    ("POST", "/v1/webhooks/{group_id}/hooks/{index}/enable"),
    ("GET", "/v1/team/{team_id}/dead-letters"),
    ("POST", "/v1/team/{team_id}/dead-letters/replay"),
    ("POST", "/v1/webhooks/init/{resource}"),
]

CONFIG_PATHS = ("/v1/team/{team_id}/webhooks", "/v1/webhooks/{group_id}")

FUZZ_SETTINGS = hypothesis_settings(
    max_examples=int(os.environ.get("DOO_WEBHOOKS_TEST_FUZZ_EXAMPLES", "30")), deadline=None, database=None,
    derandomize=not os.environ.get("DOO_WEBHOOKS_TEST_FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{data_dir / 'fuzz.sqlite3'}"
    upgrade(url)
    settings = from_env({
        "DOO_WEBHOOKS_DATA_DIR": str(data_dir), "DOO_WEBHOOKS_DATABASE_URL": url,
        "DOO_WEBHOOKS_SECRET_KEYS": TEST_KEY, "DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DOO_WEBHOOKS_LOG_FORMAT": "text",
    })
    app = create_app(settings, publisher=RecordingPublisher())
    tenant = new_tenant(app, app.test_client())
    engine = app.extensions["doo_webhooks"].engine
    group_id = tenant.create_group(graphql_config())
    now = utcnow()
    with engine.begin() as conn:
        triggers.store_trigger(conn, {
            "trigger_id": "fuzz-trigger", "type": "event_created", "organization_id": tenant.organization_id,
            "event_id": "3", "event_guide_id": None, "entity_kind": "event", "entity_id": "3",
            "entity": json.dumps({"id": 3, "status": "live", "event_id": 3}),
            "occurred_at": now, "received_at": now, "delivery_count": 0,
        })
    (delivery_id, *_) = fan_out(engine, {
        "trigger_id": "fuzz-delivered", "type": "event_created", "organization_id": tenant.organization_id,
        "event_id": "3", "entity_kind": "event", "entity_id": "3", "occurred_at": now.isoformat(),
        "entity": {"id": 3, "status": "live", "event_id": 3}}, now)
    return types.SimpleNamespace(
        app=app, tenant=tenant, group_id=group_id, trigger_id="fuzz-trigger", delivery_id=delivery_id,
        platform_key=create_platform_key(engine), schema=schemathesis.openapi.from_wsgi("/v1/openapi.json", app),
    )


def test_every_operation_is_fuzzed(world):
    documented = {(op.ok().method.upper(), op.ok().path) for op in world.schema.get_all_operations()}
    assert documented == set(OPERATIONS)


def _headers(world, method, path, auth):
    if auth == "anonymous":
        return {}
    if (method, path) == ("POST", "/v1/triggers"):
        return {"x-api-key": world.platform_key}
    if (method, path) == ("POST", "/v1/oauth"):
        return {"x-api-key": world.tenant.api_key}
    return world.tenant.headers()


URLS = st.sampled_from(["https://requestb.in/123", "http://receiver.example/hook?x=1", "https://crm.example:8443/a/b"])
HOOK_TYPES = st.sampled_from(sorted(TYPES) + [f"on_{t}" for t in TYPES])
ENTITIES = {
    "event": lambda i: {"id": i, "status": "live", "title": "Fest"},
    "order": lambda i: {"order_details": {"id": i, "status": "active"}, "event": {"id": i + 1}},
    "attendee": lambda i: {"id": i, "status": "active", "order_id": i + 1, "event_id": i + 2},
}


def _repair_query(case, data):
    query = case.query
    if isinstance(query, dict):
        if "type" in query:
            query["type"] = data.draw(HOOK_TYPES)
        query.pop("group_id", None)


def _repair(world, case, data):
    """Make the parts of a generated body valid that the document cannot describe.

    Hook types, URLs and GraphQL bodies are checked by the API beyond what OpenAPI says,
    and a trigger's entity depends on its type: without this, every generated create,
    update and trigger would be a 400 and the code behind validation would never run.
    """
    body = case.body
    if not isinstance(body, dict):
        return
    if case.path == "/v1/webhooks/init/{resource}":
        resource = data.draw(st.sampled_from(sorted(RESOURCES)))
        case.path_parameters["resource"] = resource
        body["organization_id" if resource == "events" else "event_id"] = \
            world.tenant.organization_id if resource == "events" else "3"
        body.pop("webhook_configuration_id", None)
        kinds = [t for t, kind in TYPES.items() if kind == RESOURCES[resource]]
        body["webhook_type"] = data.draw(st.lists(st.sampled_from(kinds), max_size=3))
        return
    if "type" in body:
        body["type"] = data.draw(HOOK_TYPES)
    body.pop("group_id", None)  # a random id is a 404
    if case.path == "/v1/triggers":
        hook_type = data.draw(HOOK_TYPES)
        body["type"] = hook_type
        body["entity"] = ENTITIES[TYPES[hook_type.removeprefix("on_")]](data.draw(st.integers(1, 2**40)))
        body.pop("event_id", None)  # must agree with the entity's; left out
        return
    if case.path in CONFIG_PATHS and data.draw(st.booleans()):
        # half the steered configurations start from a valid one and keep what was generated
        # for the fields that take anything of their type: the code behind validation runs on
        # these whatever else the generator drew (it draws from constants of every loaded
        # module, so its examples differ between a file's run and the whole suite's)
        free = {k: v for k, v in body.items()
                if k in ("name", "description") and isinstance(v, str) and v and "\x00" not in v}
        case.body = body = dict(seed_config(), **free)
    hooks = body.get("hooks")
    for hook in hooks if isinstance(hooks, list) else []:
        if isinstance(hook, dict):
            hook["type"] = data.draw(HOOK_TYPES)
            hook["endpoint"] = data.draw(URLS)
            if isinstance(hook.get("origin"), dict):
                hook["origin"].update(endpoint=data.draw(URLS), body=EVENT_BODY)
    if isinstance(body.get("authentication"), dict):
        body["authentication"]["endpoint"] = data.draw(URLS)
    if body.get("event_id") is not None:
        body.pop("event_guide_id", None)
    if body.get("generate_signing_secret"):
        body.pop("signing_secret", None)  # one source of the secret, not two
    if body.get("notify_url") is not None:
        body["notify_url"] = data.draw(URLS)
    if body.get("signing_secret") == "********" and case.method.upper() == "POST":
        body.pop("signing_secret")  # a mask keeps a stored secret: a new group has none


def _steer(world, case, method, steer, data):
    """Now and then point the generated case at the tenant's real objects, with a usable body."""
    if not steer:
        return
    _repair(world, case, data)
    _repair_query(case, data)
    params = case.path_parameters or {}
    if "delivery_id" in params:
        params["delivery_id"] = world.delivery_id
        _make_dead(world)  # so that a redelivery applies
    if "index" in params:
        params["index"] = 0
    if "team_id" in params:
        params["team_id"] = world.tenant.team_id
    if "group_id" in params and method != "DELETE":  # keep the seeded group for the other operations
        params["group_id"] = world.group_id
    if "trigger_id" in params:
        params["trigger_id"] = world.trigger_id
    if case.path == "/v1/oauth" and isinstance(case.body, dict):
        case.body = world.tenant.token_request()


def _make_dead(world):
    import sqlalchemy as sa

    from storage.tables import deliveries
    with world.app.extensions["doo_webhooks"].engine.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.id == world.delivery_id).values(status="dead"))


@pytest.mark.parametrize("auth", ["organizer", "anonymous"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_operation(world, method, path, mode, auth):
    operation = world.schema[path][method]
    headers = _headers(world, method, path, auth)
    seen = set()

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode), steer=st.booleans(), data=st.data())
    def run(case, steer, data):
        _steer(world, case, method, steer, data)
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        seen.add(response.status_code)

    run()
    if auth == "anonymous":
        # nothing gets past authentication without credentials (a 400 may come first: the body is read first)
        assert seen <= {400, 401, 404, 405, 413, 415}, seen
    elif mode is GenerationMode.POSITIVE:
        # guards the fuzzer itself: with credentials and steering, the code behind validation runs
        assert any(200 <= status < 300 for status in seen), seen
    assert seen, "no request was made"
