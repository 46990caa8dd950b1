"""Direct writes to the ledger, for states the API rightly refuses to create."""

from services.group_rows import new_group_id
from storage import groups
from storage.db import utcnow


def insert_group(engine, tenant, hooks):
    now = utcnow()
    group_id = new_group_id()
    group = {"id": group_id, "organization_id": tenant.organization_id, "team_id": tenant.team_id,
             "name": "direct", "created_at": now, "updated_at": now}
    rows = [{"type": h["type"], "type_key": h["type"], "method": "POST", "endpoint": h["endpoint"]} for h in hooks]
    with engine.begin() as conn:
        groups.insert_group(conn, group, rows)
    return group_id
