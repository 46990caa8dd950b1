"""Webhook groups and their hooks: create, replace, list, soft-delete; the encrypted secrets
(re-encryption, signing-secret rotation); the live hooks of given types (initialization)."""

import sqlalchemy as sa

from storage import lifecycle
from storage import statements
from storage.lifecycle import Status
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import webhook_groups


def insert_group(conn, group, hook_rows):
    conn.execute(sa.insert(webhook_groups).values(**group))
    _insert_hooks(conn, group["id"], hook_rows)


def _insert_hooks(conn, group_id, hook_rows):
    if hook_rows:
        conn.execute(sa.insert(hooks), [dict(row, group_id=group_id, position=i) for i, row in enumerate(hook_rows)])


def update_group(conn, group_id, fields, hook_rows, now):
    """Replace a group's settings and hooks; old hook rows stay for the deliveries that name them."""
    conn.execute(sa.update(webhook_groups).where(webhook_groups.c.id == group_id).values(**fields, updated_at=now))
    conn.execute(sa.update(hooks).where(hooks.c.group_id == group_id, hooks.c.removed_at.is_(None))
                 .values(removed_at=now))
    _insert_hooks(conn, group_id, hook_rows)


def count_groups(conn, organization_id):
    return conn.execute(sa.select(sa.func.count()).select_from(webhook_groups).where(
        webhook_groups.c.organization_id == organization_id, webhook_groups.c.deleted_at.is_(None))).scalar_one()


def list_groups(conn, organization_id, limit, offset):
    rows = conn.execute(
        sa.select(webhook_groups)
        .where(webhook_groups.c.organization_id == organization_id, webhook_groups.c.deleted_at.is_(None))
        .order_by(webhook_groups.c.created_at, webhook_groups.c.id)
        .limit(limit).offset(offset)
    ).all()
    return rows, hooks_of(conn, [row.id for row in rows])


def get_group(conn, group_id):
    """A live group with its hooks, or (None, [])."""
    row = conn.execute(sa.select(webhook_groups).where(
        webhook_groups.c.id == group_id, webhook_groups.c.deleted_at.is_(None))).first()
    if row is None:
        return None, []
    return row, hooks_of(conn, [group_id]).get(group_id, [])


def hooks_of(conn, group_ids):
    found = {}
    if not group_ids:
        return found
    for row in conn.execute(sa.select(hooks).where(
            hooks.c.group_id.in_(group_ids), hooks.c.removed_at.is_(None)).order_by(hooks.c.position)):
        found.setdefault(row.group_id, []).append(row)
    return found


def delete_group(conn, group_id, organization_ids, now):
    """Soft-delete a group of one of ``organization_ids`` and cancel what it still owed."""
    result = conn.execute(sa.update(webhook_groups).where(
        webhook_groups.c.id == group_id,
        webhook_groups.c.organization_id.in_(organization_ids),
        webhook_groups.c.deleted_at.is_(None),
    ).values(deleted_at=now, updated_at=now))
    if result.rowcount:
        conn.execute(sa.update(deliveries).where(
            deliveries.c.group_id == group_id, deliveries.c.status.in_(lifecycle.OPEN),
        ).values(status=Status.CANCELLED, updated_at=now))
    return result.rowcount > 0


SECRET_COLUMNS = ("client_secret_enc", "signing_secret_enc", "previous_signing_secret_enc")


def groups_with_secrets(conn, after_id, limit):
    return conn.execute(
        sa.select(webhook_groups.c.id, *(webhook_groups.c[name] for name in SECRET_COLUMNS))
        .where(webhook_groups.c.id > after_id)
        .order_by(webhook_groups.c.id).limit(limit)
    ).all()


def set_group_secrets(conn, group_id, encrypted):
    """``encrypted``: SECRET_COLUMNS -> the re-encrypted value."""
    conn.execute(sa.update(webhook_groups).where(webhook_groups.c.id == group_id).values(
        **{name: encrypted[name] for name in SECRET_COLUMNS}))


def rotate_signing_secret(conn, group_id, new_enc, previous_until, now):
    """The group signs with ``new_enc`` from now on; the secret it had keeps signing beside it
    until ``previous_until`` (None: not at all). Returns False when the group is gone."""
    result = conn.execute(sa.update(webhook_groups).where(
        webhook_groups.c.id == group_id, webhook_groups.c.deleted_at.is_(None)).values(
        previous_signing_secret_enc=webhook_groups.c.signing_secret_enc if previous_until else None,
        previous_signing_until=previous_until, signing_secret_enc=new_enc, updated_at=now))
    return result.rowcount > 0


def hooks_for_types(conn, organization_ids, hook_types, group_id=None):
    """Live hooks of live groups of the types given, with their group's scope."""
    def build(by_organization, by_group):
        g = webhook_groups
        where = [g.c.deleted_at.is_(None), hooks.c.removed_at.is_(None),
                 hooks.c.type.in_(sa.bindparam("h_types", expanding=True))]
        if by_organization:
            where.append(g.c.organization_id.in_(sa.bindparam("h_orgs", expanding=True)))
        if by_group:
            where.append(g.c.id == sa.bindparam("h_group"))
        return (sa.select(hooks.c.id, hooks.c.group_id, hooks.c.type, hooks.c.endpoint, g.c.organization_id,
                          g.c.event_id.label("group_event_id"), g.c.event_guide_id.label("group_event_guide_id"),
                          hooks.c.disabled_at, hooks.c.disabled_reason, hooks.c.paused_until)
                .select_from(hooks.join(g)).where(*where)
                .order_by(g.c.created_at, g.c.id, hooks.c.position))
    shape = (organization_ids is not None, group_id is not None)
    params = {"h_types": sorted(hook_types)}
    if shape[0]:
        params["h_orgs"] = sorted(organization_ids)
    if shape[1]:
        params["h_group"] = group_id
    return conn.execute(statements.built(("hooks_for_types", *shape), lambda: build(*shape)), params).all()
