"""The dashboard's pages on SQLite and PostgreSQL: what each shows, keyset paging, and the
changes (redeliver, replay one / selected / all, enable, initialization) going through the
API's own functions; a second tenant sees none of the first one's data on any page (its ids
answer 404, as in the API).
"""

import datetime
import re

import pytest
import sqlalchemy as sa

from storage import delivery_log
from storage import hook_stats
from storage.db import utcnow
from storage.tables import attempts
from storage.tables import deliveries
from storage.tables import hooks
from tests.support.dashboard import login
from tests.support.dashboard import token_of
from workers.fanout import fan_out
from workers.producer import prepare


def order(order_id):
    return {"order_details": {"id": order_id, "status": "active"}, "event": {"id": 7}}


class Ledger:
    def __init__(self, app, tenant):
        self.engine = app.extensions["doo_webhooks"].engine
        self.tenant = tenant
        self.group_id = tenant.create_group({"name": "Box office CRM", "hooks": [
            {"type": "order_created", "method": "POST", "endpoint": "https://crm.example/orders"},
            {"type": "order_updated", "method": "POST", "endpoint": "https://crm.example/updates"}]})

    def emit(self, trigger_type, order_id, now=None):
        record = prepare(trigger_type, order(order_id), organization_id=self.tenant.organization_id)
        return fan_out(self.engine, record, now or utcnow())

    def set(self, ids, **values):
        with self.engine.begin() as conn:
            conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(ids)).values(**values))

    def status(self, delivery_id):
        with self.engine.begin() as conn:
            return delivery_log.delivery(conn, delivery_id).status

    def attempt(self, delivery_id, number, status_code, body):
        """An attempt as the recorder writes it: the attempt row, and its hook's hour counted."""
        started, kind = utcnow(), None if status_code == 200 else "http_status"
        with self.engine.begin() as conn:
            conn.execute(sa.insert(attempts).values(
                delivery_id=delivery_id, number=number, started_at=started, duration_ms=42,
                status_code=status_code, error_kind=kind,
                response_excerpt=body, request_headers='{"webhook-id": "%s", "authorization": "[redacted]"}'
                % delivery_id))
            hook_id = conn.execute(sa.select(deliveries.c.hook_id).where(deliveries.c.id == delivery_id)).scalar_one()
            hook_stats.count(conn, [{"hook_id": hook_id, "started_at": started, "last_status_code": status_code,
                                     "last_error": kind}])


@pytest.fixture
def owner(tenant_factory):
    return tenant_factory()


@pytest.fixture
def ledger(app, owner):
    return Ledger(app, owner)


def text(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def test_groups_show_health_and_a_disabled_hook_is_enabled_through_the_apis_function(client, ledger, owner, publisher):
    [delivered] = ledger.emit("order_created", 1)
    ledger.attempt(delivered, 1, 503, '{"message": "down"}')
    ledger.attempt(delivered, 2, 200, '{"message": "ok"}')
    [waiting] = ledger.emit("order_updated", 1)
    with ledger.engine.begin() as conn:
        conn.execute(sa.update(hooks).where(hooks.c.position == 1).values(
            disabled_at=utcnow(), disabled_reason="410 Gone from https://crm.example/updates"))
    login(client, owner)
    page = text(client.get("/dashboard/"))
    assert "Box office CRM" in page and "50.0 %" in page and "of 2" in page
    assert "410 Gone from https://crm.example/updates" in page and "1 waiting" in page
    assert page.count('class="primary enable"') == 1
    answer = client.post(f"/dashboard/groups/{ledger.group_id}/hooks/1/enable", data={"csrf_token": token_of(page)})
    assert answer.status_code == 303
    assert "1 waiting deliveries go out now" in text(client.get(answer.headers["Location"]))
    with ledger.engine.begin() as conn:
        assert conn.execute(sa.select(hooks.c.disabled_at).where(hooks.c.position == 1)).scalar() is None
    assert client.post(f"/dashboard/groups/{ledger.group_id}/hooks/7/enable",
                       data={"csrf_token": token_of(page)}).status_code == 404


def test_deliveries_filter_and_page_by_keyset_newest_first(client, ledger, owner):
    start = utcnow() - datetime.timedelta(hours=2)
    made = []
    for i in range(120):
        made += ledger.emit("order_created", i + 1, now=start + datetime.timedelta(seconds=i))
    ledger.set(made[:5], status="dead")
    login(client, owner)
    first = text(client.get("/dashboard/deliveries"))
    ids = re.findall(r'href="/dashboard/deliveries/([0-9a-f-]{36})"', first)
    assert ids == made[::-1][:50]
    older = re.search(r'href="([^"]+)" id="older"', first).group(1).replace("&amp;", "&")
    second = text(client.get(older))
    assert re.findall(r'href="/dashboard/deliveries/([0-9a-f-]{36})"', second) == made[::-1][50:100]
    newer = re.search(r'href="([^"]+)" id="newer"', second).group(1).replace("&amp;", "&")
    assert re.findall(r'href="/dashboard/deliveries/([0-9a-f-]{36})"', text(client.get(newer))) == made[::-1][:50]
    dead = text(client.get("/dashboard/deliveries?status=dead"))
    assert re.findall(r'href="/dashboard/deliveries/([0-9a-f-]{36})"', dead) == made[:5][::-1]
    entity = text(client.get("/dashboard/deliveries?entity=7&type=order_created"))
    assert re.findall(r'href="/dashboard/deliveries/([0-9a-f-]{36})"', entity) == [made[6]]
    until = (start + datetime.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S")
    window = text(client.get(f"/dashboard/deliveries?until={until}"))
    assert re.findall(r'href="/dashboard/deliveries/([0-9a-f-]{36})"', window) == made[:3][::-1]
    assert client.get("/dashboard/deliveries?status=bogus").status_code == 400
    assert client.get("/dashboard/deliveries?before=garbage").status_code == 400


def test_a_delivery_shows_payload_headers_attempts_and_redelivers(client, ledger, owner, publisher):
    [one] = ledger.emit("order_created", 42)
    ledger.set([one], status="dead", attempts=2, payload='{"order_details": {"id": 42}}', last_status_code=503)
    ledger.attempt(one, 1, 503, '{"message": "Service unavailable", "description": "CRM maintenance"}')
    ledger.attempt(one, 2, 500, "<html>stack trace</html>")
    login(client, owner)
    page = text(client.get(f"/dashboard/deliveries/{one}"))
    assert "CRM maintenance" in page and "&lt;html&gt;stack trace&lt;/html&gt;" in page
    assert "[redacted]" in page and '&#34;id&#34;: 42' in page and "42 ms" in page
    answer = client.post(f"/dashboard/deliveries/{one}/redeliver", data={"csrf_token": token_of(page)})
    assert answer.status_code == 303
    assert ledger.status(one) == "pending" and publisher.delivery_batches[-1] == [one]
    assert "Redelivery queued" in text(client.get(answer.headers["Location"]))
    # pending now: the API's rule refuses a second redelivery (409), the page says why
    again = client.post(f"/dashboard/deliveries/{one}/redeliver", data={"csrf_token": token_of(page)})
    assert "only a dead, delivered or skipped delivery" in text(again, 409)


def test_dead_letters_replay_one_selected_and_all_matching(client, ledger, owner, publisher):
    made = [i for n in range(6) for i in ledger.emit("order_created", n + 1)]
    ledger.set(made, status="dead")
    login(client, owner)
    page = text(client.get("/dashboard/dead-letters"))
    assert page.count('class="dead-letter"') == 6
    token = token_of(page)
    one = client.post("/dashboard/dead-letters/replay", data={"csrf_token": token, "action": f"one:{made[0]}"})
    assert "1 dead letter(s) replayed" in text(client.get(one.headers["Location"]))
    selected = client.post("/dashboard/dead-letters/replay",
                           data={"csrf_token": token, "action": "selected", "id": [made[0], made[1], made[2]]})
    assert "2 dead letter(s) replayed, 1 not (no longer dead)" in text(client.get(selected.headers["Location"]))
    ledger.set([made[5]], type="order_updated")
    matching = client.post("/dashboard/dead-letters/replay",
                           data={"csrf_token": token, "action": "all", "type": "order_created"})
    assert "type=order_created" in matching.headers["Location"]
    assert "2 dead letter(s) replayed" in text(client.get(matching.headers["Location"]))
    assert [ledger.status(i) for i in made] == ["pending"] * 5 + ["dead"]
    assert sorted(sum(publisher.delivery_batches, [])) == sorted(made[:5])


def test_the_timeline_draws_the_last_days_by_hour(client, ledger, owner):
    now = utcnow()
    a = ledger.emit("order_created", 1, now=now - datetime.timedelta(hours=5))
    b = ledger.emit("order_created", 2, now=now - datetime.timedelta(hours=1))
    c = ledger.emit("order_created", 3, now=now)
    ledger.set(a, status="delivered")
    ledger.set(b, status="dead")
    ledger.set(c, status="retrying")
    login(client, owner)
    page = text(client.get(f"/dashboard/groups/{ledger.group_id}/timeline?days=1"))
    assert "<svg" in page and page.count("<rect") == 3
    assert ": 1 delivered</title>" in page and ": 1 dead</title>" in page and ": 1 failed</title>" in page


def test_initialization_form_starts_the_apis_initialization_and_shows_progress(client, ledger, owner):
    ledger.emit("order_created", 1)
    login(client, owner)
    page = text(client.get("/dashboard/initialization"))
    assert "No initialization yet" in page
    missing = client.post("/dashboard/initialization", data={"csrf_token": token_of(page), "resource": "orders"})
    assert "event_id" in text(missing, 400)
    answer = client.post("/dashboard/initialization", data={
        "csrf_token": token_of(page), "resource": "orders", "event_id": "7", "webhook_type": ["order_created"],
        "max_rate_per_min": "50"})
    assert answer.status_code == 303
    done = text(client.get(answer.headers["Location"]))
    assert "1 item(s), 1 deliveries queued" in done
    assert '<progress max="1" value="0">' in done and 'http-equiv="refresh"' in done


def test_a_second_tenant_sees_none_of_the_first_ones_data_on_any_page(client, ledger, owner, tenant_factory, app):
    [one] = ledger.emit("order_created", 1)
    ledger.set([one], status="dead", payload='{"secret": "first tenant"}')
    ledger.emit("order_updated", 2)
    other = tenant_factory()
    login(client, other)
    pages = ["/dashboard/", "/dashboard/deliveries", "/dashboard/deliveries?status=dead", "/dashboard/dead-letters",
             "/dashboard/initialization"]
    for path in pages:
        page = text(client.get(path))
        assert "Box office CRM" not in page and ledger.group_id not in page and one not in page, path
    for path in (f"/dashboard/deliveries/{one}", f"/dashboard/groups/{ledger.group_id}/timeline",
                 f"/dashboard/deliveries?group={ledger.group_id}", f"/dashboard/dead-letters?group={ledger.group_id}"):
        assert client.get(path).status_code == 404, path
    token = token_of(client.get("/dashboard/"))
    for path, form in ((f"/dashboard/deliveries/{one}/redeliver", {}),
                       (f"/dashboard/groups/{ledger.group_id}/hooks/0/enable", {}),
                       ("/dashboard/dead-letters/replay", {"action": f"one:{one}"}),
                       ("/dashboard/dead-letters/replay", {"action": "selected", "id": one}),
                       ("/dashboard/dead-letters/replay", {"action": "all", "group": ledger.group_id})):
        assert client.post(path, data={"csrf_token": token, **form}).status_code == 404, (path, form)
    nothing = client.post("/dashboard/dead-letters/replay", data={"csrf_token": token, "action": "all"})
    assert "0 dead letter(s) replayed" in text(client.get(nothing.headers["Location"]))
    init = client.post("/dashboard/initialization", data={
        "csrf_token": token, "resource": "orders", "event_id": "7", "webhook_configuration_id": ledger.group_id})
    assert text(init, 404)
    assert ledger.status(one) == "dead"
