"""The dashboard's SQL: its sessions, and the ledger read the way its pages show it.

Every listing is scoped by ``organization_ids`` (the caller's) and pages by keyset, newest
first on (created_at, id), so a page costs the same on the millionth row as on the first;
it reads by the ledger's own indexes, plus ix_deliveries_group_created and the partial
ix_deliveries_init (migrations 0007 and 0010: docs/dashboard-explain.txt shows the plans at
1,000,000 deliveries), so the dashboard costs the hot path almost nothing. Both dialects are served: PostgreSQL and standalone's SQLite.
"""

import sqlalchemy as sa

from storage import delivery_log
from storage import groups
from storage import lifecycle
from storage.lifecycle import Status
from storage.tables import credentials
from storage.tables import dashboard_sessions
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import triggers
from storage.tables import webhook_groups

# --- sessions ----------------------------------------------------------------------------


def create_session(conn, id_hash, credential_id, csrf_token, now, expires_at):
    conn.execute(sa.insert(dashboard_sessions).values(
        id_hash=id_hash, credential_id=credential_id, csrf_token=csrf_token, created_at=now, expires_at=expires_at))


def live_session(conn, id_hash, now):
    """The session with its credential's organizer, or None: expired, unknown, or its
    credential revoked (revoking an API key ends its dashboard sessions at once)."""
    return conn.execute(
        sa.select(dashboard_sessions.c.id_hash, dashboard_sessions.c.csrf_token, dashboard_sessions.c.expires_at,
                  credentials.c.id, credentials.c.organizer_id, credentials.c.client_id)
        .select_from(dashboard_sessions.join(credentials))
        .where(dashboard_sessions.c.id_hash == id_hash, dashboard_sessions.c.expires_at > now,
               credentials.c.revoked_at.is_(None))
    ).first()


def end_session(conn, id_hash):
    conn.execute(sa.delete(dashboard_sessions).where(dashboard_sessions.c.id_hash == id_hash))


def purge_expired_sessions(conn, now):
    conn.execute(sa.delete(dashboard_sessions).where(dashboard_sessions.c.expires_at <= now))


# --- groups and hooks --------------------------------------------------------------------


def open_counts(conn, hook_ids):
    """Deliveries still owed (pending or retrying) per hook: what an Enable sends (ix_deliveries_hook_status)."""
    if not hook_ids:
        return {}
    return dict(conn.execute(
        sa.select(deliveries.c.hook_id, sa.func.count())
        .where(deliveries.c.hook_id.in_(hook_ids), deliveries.c.status.in_(lifecycle.OPEN))
        .group_by(deliveries.c.hook_id)
    ).all())


def groups_of(conn, organization_ids, limit):
    """Live groups of the organizations, by name; groups are few per organization."""
    if not organization_ids:
        return [], {}
    rows = conn.execute(
        sa.select(webhook_groups)
        .where(webhook_groups.c.organization_id.in_(organization_ids), webhook_groups.c.deleted_at.is_(None))
        .order_by(webhook_groups.c.organization_id, webhook_groups.c.name, webhook_groups.c.id)
        .limit(limit)
    ).all()
    return rows, groups.hooks_of(conn, [row.id for row in rows])


# --- timeline ----------------------------------------------------------------------------


def _hour(conn, column):
    if conn.dialect.name == "postgresql":
        return sa.func.date_trunc("hour", column)
    return sa.func.strftime("%Y-%m-%d %H:00:00", column)  # SQLite keeps times as ISO text


def timeline(conn, group_id, since):
    """(hour, status, count) of the group's deliveries created since ``since``, by the hour
    they were created; an index-only range of ix_deliveries_group_created plus the status."""
    hour = _hour(conn, deliveries.c.created_at).label("hour")
    return conn.execute(
        sa.select(hour, deliveries.c.status, sa.func.count().label("n"))
        .where(deliveries.c.group_id == group_id, deliveries.c.created_at >= since)
        .group_by(hour, deliveries.c.status).order_by(hour)
    ).all()


# --- deliveries --------------------------------------------------------------------------


def delivery_page(conn, organization_ids, limit, *, older_than=None, newer_than=None, **filters):
    """Up to ``limit`` deliveries matching ``filters``, newest first, after a keyset position.

    ``older_than`` / ``newer_than`` are a (created_at, id) of the page before or after; the
    rows come back newest first either way. No count: counting a million rows is the slow
    part of an offset page, and the pages do not need it.

    Which index serves it: a group's rows ix_deliveries_group_created; one status
    ix_deliveries_org_status_created; an entity its triggers. Everything else of an
    organization is the newest ``limit`` of each status from ix_deliveries_org_status_created,
    merged: seven short index ranges per organization instead of an index of the ledger's own, which every
    write would pay for.
    """
    if not organization_ids:
        return []
    key = sa.tuple_(deliveries.c.created_at, deliveries.c.id)
    where = delivery_log.where_of(organization_ids=organization_ids, **filters)
    order = (deliveries.c.created_at.desc(), deliveries.c.id.desc())
    if older_than is not None:
        where.append(key < sa.tuple_(*older_than))
    elif newer_than is not None:
        where.append(key > sa.tuple_(*newer_than))
        order = (deliveries.c.created_at, deliveries.c.id)
    if conn.dialect.name == "postgresql" and not any(
            filters.get(name) is not None for name in ("group_id", "status", "entity_id")):
        branches = [sa.select(deliveries.c.id, deliveries.c.created_at)
                    .where(*where, deliveries.c.organization_id == organization_id, deliveries.c.status == status)
                    .order_by(*order).limit(limit).subquery()
                    for organization_id in sorted(set(organization_ids)) for status in Status]
        where = [deliveries.c.id.in_(sa.union_all(*(sa.select(b.c.id) for b in branches)).scalar_subquery())]
    rows = conn.execute(
        sa.select(*delivery_log.summary_columns())
        .select_from(deliveries.join(triggers).join(hooks))
        .where(*where).order_by(*order).limit(limit)
    ).all()
    return rows if newer_than is None else rows[::-1]


def visible_dead(conn, organization_ids, ids):
    """The dead deliveries among ``ids`` that belong to the organizations (a replay of a selection)."""
    if not ids or not organization_ids:
        return []
    return conn.execute(
        sa.select(deliveries.c.id).where(deliveries.c.id.in_(ids), deliveries.c.status == Status.DEAD,
                                         deliveries.c.organization_id.in_(organization_ids))
        .order_by(deliveries.c.sequence, deliveries.c.trigger_pk, deliveries.c.id)
    ).scalars().all()


# --- initialization ----------------------------------------------------------------------


def init_progress(conn, organization_ids):
    """Per organization and status: initialization deliveries and when the last open one is due
    (the partial index ix_deliveries_init holds only source = 'init' rows)."""
    if not organization_ids:
        return []
    return conn.execute(
        sa.select(deliveries.c.organization_id, deliveries.c.status, sa.func.count().label("n"),
                  sa.func.max(deliveries.c.next_attempt_at).label("last_due_at"))
        .where(deliveries.c.source == "init", deliveries.c.organization_id.in_(organization_ids))
        .group_by(deliveries.c.organization_id, deliveries.c.status)
    ).all()
