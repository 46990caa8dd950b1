"""Every SQL statement of doo-webhooks. Callers pass a connection inside a transaction.

Two dialects are served: PostgreSQL (production; claims use ``FOR UPDATE SKIP LOCKED`` so
many workers and schedulers take disjoint rows) and SQLite (embedded mode; a single
writer, made explicit by ``BEGIN IMMEDIATE`` in storage.db).
"""

import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from storage import lifecycle
from storage.lifecycle import ErrorKind
from storage.lifecycle import Move
from storage.lifecycle import NotificationStatus
from storage.lifecycle import Status
from storage.tables import access_tokens
from storage.tables import attempts
from storage.tables import credentials
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import inbox
from storage.tables import memberships
from storage.tables import notifications
from storage.tables import organizations
from storage.tables import organizers
from storage.tables import platform_keys
from storage.tables import teams
from storage.tables import triggers
from storage.tables import webhook_groups



def _insert(conn, table):
    """An INSERT that knows ON CONFLICT on both dialects."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _locking(conn, select):
    if conn.dialect.name == "postgresql":
        return select.with_for_update(skip_locked=True)
    return select


# --- tenancy and credentials -------------------------------------------------------------

def create_organization(conn, name, now):
    return conn.execute(sa.insert(organizations).values(name=name, created_at=now)).inserted_primary_key[0]


def organization_count(conn):
    return conn.execute(sa.select(sa.func.count()).select_from(organizations)).scalar_one()


def create_team(conn, organization_id, name, now, is_all_events_team=True):
    if conn.execute(sa.select(organizations.c.id).where(organizations.c.id == organization_id)).first() is None:
        raise LookupError(f"organization {organization_id} does not exist")
    return conn.execute(sa.insert(teams).values(
        organization_id=organization_id, name=name, is_all_events_team=is_all_events_team, created_at=now,
    )).inserted_primary_key[0]


def create_organizer(conn, email, name, now):
    return conn.execute(sa.insert(organizers).values(email=email, name=name, created_at=now)).inserted_primary_key[0]


def add_membership(conn, organizer_id, team_id, role):
    if conn.execute(sa.select(teams.c.id).where(teams.c.id == team_id)).first() is None:
        raise LookupError(f"team {team_id} does not exist")
    if conn.execute(sa.select(organizers.c.id).where(organizers.c.id == organizer_id)).first() is None:
        raise LookupError(f"organizer {organizer_id} does not exist")
    conn.execute(sa.insert(memberships).values(organizer_id=organizer_id, team_id=team_id, role=role))


def create_credentials(conn, organizer_id, api_key_hash, client_id, client_secret_hash, now):
    if conn.execute(sa.select(organizers.c.id).where(organizers.c.id == organizer_id)).first() is None:
        raise LookupError(f"organizer {organizer_id} does not exist")
    return conn.execute(sa.insert(credentials).values(
        organizer_id=organizer_id, api_key_hash=api_key_hash, client_id=client_id,
        client_secret_hash=client_secret_hash, created_at=now,
    )).inserted_primary_key[0]


def create_platform_key(conn, name, key_hash, now):
    return conn.execute(sa.insert(platform_keys).values(name=name, key_hash=key_hash, created_at=now)).inserted_primary_key[0]


def platform_key_exists(conn, key_hash):
    row = conn.execute(sa.select(platform_keys.c.id).where(
        platform_keys.c.key_hash == key_hash, platform_keys.c.revoked_at.is_(None))).first()
    return row is not None


def credential_by_api_key(conn, api_key_hash):
    return conn.execute(sa.select(credentials).where(
        credentials.c.api_key_hash == api_key_hash, credentials.c.revoked_at.is_(None))).first()


def store_access_token(conn, token_hash, credential_id, expires_at):
    conn.execute(sa.insert(access_tokens).values(
        token_hash=token_hash, credential_id=credential_id, expires_at=expires_at))


def access_token(conn, token_hash):
    return conn.execute(sa.select(access_tokens).where(access_tokens.c.token_hash == token_hash)).first()


def purge_expired_tokens(conn, now):
    conn.execute(sa.delete(access_tokens).where(access_tokens.c.expires_at < now))


def memberships_of(conn, organizer_id):
    """The organizer's teams with their organization, in a stable order."""
    return conn.execute(
        sa.select(
            teams.c.id.label("team_id"), teams.c.name.label("team_name"),
            teams.c.is_all_events_team, memberships.c.role,
            organizations.c.id.label("organization_id"), organizations.c.name.label("organization_name"),
        )
        .select_from(memberships.join(teams).join(organizations))
        .where(memberships.c.organizer_id == organizer_id)
        .order_by(organizations.c.id, teams.c.id)
    ).all()


# --- webhook groups ----------------------------------------------------------------------

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


# --- triggers and fan-out ----------------------------------------------------------------

def lock_entity(conn, organization_id, entity_kind, entity_id):
    """Serialise fan-outs of one entity until commit, so each sees the deliveries of the one
    before it (the ordering rule needs them). SQLite's single writer does this already."""
    if conn.dialect.name == "postgresql":
        key = f"{organization_id}:{entity_kind}:{entity_id}"
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


def store_trigger(conn, values):
    """Insert a trigger once; returns (primary key, created) — created is False for a repeat."""
    stmt = _insert(conn, triggers).values(**values).on_conflict_do_nothing(index_elements=["trigger_id"])
    pk = conn.execute(stmt.returning(triggers.c.id)).scalar()
    if pk is not None:
        return pk, True
    existing = conn.execute(sa.select(triggers.c.id).where(triggers.c.trigger_id == values["trigger_id"])).scalar_one()
    return existing, False


def store_triggers(conn, rows):
    """Insert many triggers in one statement; a trigger_id stored before (or twice in ``rows``)
    is left as it is. Returns {trigger_id: primary key} of the rows this call created."""
    if not rows:
        return {}
    stmt, params = _bulk_insert(conn, triggers, rows)
    stmt = _built(("store_triggers", conn.dialect.name, tuple(rows[0])), lambda: stmt.on_conflict_do_nothing(
        index_elements=["trigger_id"]).returning(triggers.c.trigger_id, triggers.c.id))
    return dict(conn.execute(stmt, params).all())


def add_to_inbox(conn, records, now):
    """Queue trigger records (JSON texts) for an embedded service's intake."""
    if records:
        conn.execute(sa.insert(inbox), [{"record": text, "created_at": now} for text in records])


def take_inbox(conn, limit):
    """The oldest ``limit`` inbox rows (id, record), in the order they were added."""
    return conn.execute(sa.select(inbox.c.id, inbox.c.record).order_by(inbox.c.id).limit(limit)).all()


def drop_from_inbox(conn, ids):
    if ids:
        conn.execute(sa.delete(inbox).where(inbox.c.id.in_(ids)))


def inbox_depth(conn):
    return conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one()


# --- claiming, recording, dispatching ----------------------------------------------------

def _not_blocked(d):
    """No earlier delivery with the same ordering key is still owed."""
    e = deliveries.alias("earlier")
    return ~sa.exists().where(
        e.c.ordering_key == d.c.ordering_key,
        e.c.status.in_(lifecycle.BLOCKING),
        sa.or_(e.c.sequence < d.c.sequence,
               sa.and_(e.c.sequence == d.c.sequence, e.c.trigger_pk < d.c.trigger_pk)),
    )


def _hook_open(d, now):
    """The delivery's hook is neither disabled nor paused at ``now`` (a receiver's Retry-After).
    A hook a PUT replaced holds nothing back any more: its waiting deliveries go out under the
    usual rules (they keep the endpoint they were made for)."""
    return ~sa.exists().where(hooks.c.id == d.c.hook_id, sa.or_(
        sa.and_(hooks.c.disabled_at.is_not(None), hooks.c.removed_at.is_(None)),
        hooks.c.paused_until > now))


def claim(conn, ids, now, lease_seconds):
    """Take the due, unblocked deliveries among ``ids`` for one attempt; returns their details.

    The attempt number is counted at claim time, so a worker that dies mid-request still
    used up an attempt: a receiver that crashes workers cannot loop forever.
    """
    if not ids:
        return []
    candidates = _locking(conn, sa.select(deliveries.c.id).where(
        deliveries.c.id.in_(ids),
        deliveries.c.status.in_(lifecycle.OPEN),
        deliveries.c.next_attempt_at <= now,
        _not_blocked(deliveries),
        _hook_open(deliveries, now),
    ))
    claimed = conn.execute(
        sa.update(deliveries).where(deliveries.c.id.in_(candidates.scalar_subquery()))
        .values(status=Status.IN_FLIGHT, attempts=deliveries.c.attempts + 1,
                lease_until=now + datetime.timedelta(seconds=lease_seconds), updated_at=now)
        .returning(deliveries.c.id)
    ).scalars().all()
    # the others (blocked, not yet due, or held by another worker) are left as they are:
    # a send loop's claim_due takes them when their turn comes
    return claimed_details(conn, claimed)


def claim_due(conn, now, lease_seconds, limit, status, skip_endpoints=()):
    """Claim up to ``limit`` due, unblocked deliveries of one lane for one attempt each.

    ``status`` is the lane (lifecycle.LANES): first attempts of a series, or retries, so that a
    storm of retries never takes the room first attempts need. Rows another worker holds
    are skipped (SKIP LOCKED), and so are the ``skip_endpoints`` this worker cannot send to
    now (their host is at its connection cap): their lease would run out while they wait.
    The attempt is counted at claim time (see ``claim``). Returns claimed_details.
    """
    def build(skipping):
        where = [deliveries.c.status == sa.bindparam("c_status"), deliveries.c.next_attempt_at <= sa.bindparam("c_now"),
                 _not_blocked(deliveries), _hook_open(deliveries, sa.bindparam("c_now"))]
        if skipping:
            where.append(deliveries.c.endpoint.not_in(sa.bindparam("c_skip", expanding=True)))
        due = _locking(conn, sa.select(deliveries.c.id).where(*where)
                       .order_by(deliveries.c.next_attempt_at).limit(sa.bindparam("c_limit", type_=sa.Integer)))
        return (sa.update(deliveries).where(deliveries.c.id.in_(due.scalar_subquery()))
                .values(status=Status.IN_FLIGHT, attempts=deliveries.c.attempts + 1,
                        lease_until=sa.bindparam("c_lease_until", type_=sa.DateTime),
                        updated_at=sa.bindparam("c_updated_at", type_=sa.DateTime))
                .returning(deliveries.c.id))
    skipping = bool(skip_endpoints)
    stmt = _built(("claim_due", conn.dialect.name, skipping), lambda: build(skipping))
    params = {"c_status": status, "c_now": now, "c_limit": limit, "c_updated_at": now,
              "c_lease_until": now + datetime.timedelta(seconds=lease_seconds)}
    if skipping:
        params["c_skip"] = sorted(skip_endpoints)
    return claimed_details(conn, conn.execute(stmt, params).scalars().all())


def claimed_details(conn, ids):
    """What sending needs of claimed deliveries: trigger, hook and group, in trigger order."""
    if not ids:
        return []
    return conn.execute(_built("claimed_details", lambda: sa.select(
            deliveries.c.id, deliveries.c.attempts, deliveries.c.attempt_base, deliveries.c.hook_id,
            deliveries.c.payload, deliveries.c.endpoint,
            deliveries.c.type, deliveries.c.group_id, deliveries.c.organization_id,
            deliveries.c.entity_kind, deliveries.c.entity_id, deliveries.c.created_at,
            triggers.c.trigger_id, triggers.c.entity, triggers.c.event_id,
            triggers.c.received_at,
            hooks.c.method, hooks.c.origin_method, hooks.c.origin_endpoint, hooks.c.origin_body,
            hooks.c.disabled_at.label("hook_disabled_at"),
            webhook_groups.c.authentication, webhook_groups.c.client_secret_enc,
            webhook_groups.c.signing_secret_enc, webhook_groups.c.previous_signing_secret_enc,
            webhook_groups.c.previous_signing_until, webhook_groups.c.deleted_at.label("group_deleted_at"),
            sa.func.coalesce(hooks.c.max_per_second, webhook_groups.c.max_per_second).label("max_per_second"),
        )
        .select_from(deliveries.join(triggers).join(hooks).join(webhook_groups))
        .where(deliveries.c.id.in_(sa.bindparam("d_ids", expanding=True)))
        .order_by(deliveries.c.sequence, deliveries.c.trigger_pk)), {"d_ids": list(ids)}).all()


def record(conn, outcomes):
    """Write the attempts and the new delivery states of one batch; returns the ids that went
    dead now.

    Each outcome is a dict: id, number, status, next_attempt_at, payload (or None to keep),
    last_status_code, last_error, delivered_at, now, and the attempt fields. A worker whose
    lease was taken over (the row is no longer in_flight at this attempt number) changes nothing.

    Set-based: on PostgreSQL the deliveries in one statement, then the attempts in one (SQLite,
    in-process, takes executemany).
    The deliveries go first: a sweep taking back a lease (expire_leases) locks the delivery
    before it writes its lost attempt, so this order never waits for it in a circle.
    """
    if not outcomes:
        return []
    outcomes = sorted(outcomes, key=lambda o: o["id"])
    if conn.dialect.name == "postgresql":
        buried = _record_deliveries_pg(conn, outcomes)
    else:
        buried = _record_deliveries(conn, outcomes)
    _insert_attempts(conn, [{
        "delivery_id": o["id"], "number": o["number"], "started_at": o["started_at"],
        "duration_ms": o["duration_ms"], "status_code": o["last_status_code"],
        "error_kind": o["last_error"], "error_detail": o.get("error_detail"),
        "response_excerpt": o.get("response_excerpt"), "request_headers": o.get("request_headers"),
    } for o in outcomes])
    _hook_health(conn, [o for o in outcomes if o.get("health") is not None])
    return buried


def _insert_attempts(conn, rows):
    """Attempt rows, an attempt already recorded (by a sweep that took the lease back) kept.

    On PostgreSQL one INSERT ... SELECT FROM unnest: SQLAlchemy's insertmanyvalues does not
    take ON CONFLICT statements (2.1 with psycopg2 falls back to cursor.executemany, a round
    trip per row). SQLite, in-process, takes the executemany.
    """
    stmt = _insert(conn, attempts)
    if conn.dialect.name == "postgresql":
        # strings as unbounded text: a cast to varchar(n) would cut silently where the column refuses
        names = tuple(rows[0])

        def build():
            kinds = {name: sa.Text if isinstance(attempts.c[name].type, sa.String) else attempts.c[name].type
                     for name in names}
            v = _unnest("a", kinds)
            return (stmt.from_select(names, sa.select(*(v.c[name] for name in names)))
                    .on_conflict_do_nothing(index_elements=["delivery_id", "number"]))
        conn.execute(_built(("attempts", names), build), _arrays("a", names, rows))
    else:
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["delivery_id", "number"]), rows)


def _still_in_flight(d, number):
    return sa.and_(d.c.status == Status.IN_FLIGHT, d.c.attempts == number)


def _record_deliveries_pg(conn, outcomes):
    """One UPDATE ... FROM unnest(typed arrays) for the whole batch: a constant statement text
    whatever the batch size, explicit types (a column of NULLs would be text in a VALUES list)."""
    kinds = {"id": sa.String, "number": sa.Integer, "status": sa.String, "next_attempt_at": sa.DateTime,
             "payload": sa.Text, "last_status_code": sa.Integer, "last_error": sa.String,
             "delivered_at": sa.DateTime, "now": sa.DateTime}

    def build():
        v = _unnest("r", kinds)
        return (sa.update(deliveries)
                .where(deliveries.c.id == v.c.id, _still_in_flight(deliveries, v.c.number))
                .values(status=v.c.status, next_attempt_at=v.c.next_attempt_at,
                        payload=sa.func.coalesce(deliveries.c.payload, v.c.payload),
                        last_status_code=v.c.last_status_code, last_error=v.c.last_error,
                        delivered_at=v.c.delivered_at, updated_at=v.c.now, lease_until=None)
                .returning(deliveries.c.id, deliveries.c.status))
    done = conn.execute(_built("record", build),
                        _arrays("r", kinds, [{name: o.get(name) for name in kinds} for o in outcomes])).all()
    return sorted(row.id for row in done if row.status == Status.DEAD)


def _record_deliveries(conn, outcomes):
    stmt = (
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("b_id"), _still_in_flight(deliveries, sa.bindparam("b_number")))
        .values(
            status=sa.bindparam("b_status"), next_attempt_at=sa.bindparam("b_next"),
            payload=sa.func.coalesce(deliveries.c.payload, sa.bindparam("b_payload")),
            last_status_code=sa.bindparam("b_code"), last_error=sa.bindparam("b_error"),
            delivered_at=sa.bindparam("b_delivered_at"), updated_at=sa.bindparam("b_now"),
            lease_until=None,
        )
    )
    params = [{
        "b_id": o["id"], "b_number": o["number"], "b_status": o["status"], "b_next": o["next_attempt_at"],
        "b_payload": o.get("payload"), "b_code": o["last_status_code"], "b_error": o["last_error"],
        "b_delivered_at": o.get("delivered_at"), "b_now": o["now"],
    } for o in outcomes]
    living = [p for p in params if p["b_status"] != Status.DEAD]
    if living:
        conn.execute(stmt, living)
    # dead is rare: one statement each, so the caller learns which really went dead now
    buried = []
    for p in params:
        if p["b_status"] == Status.DEAD:
            buried.extend(conn.execute(stmt.returning(deliveries.c.id), p).scalars())
    return buried


#: last_failure_at is advanced only when it is this much older than a new failure. It feeds
#: nothing but auto-disable (failing_hooks: failing since before DISABLE_AFTER ago and failed
#: again since), so a value up to a minute stale can delay a disable by at most a minute,
#: while a hook failing thousands of times a second gets its row written once a minute.
HEALTH_GRANULARITY = datetime.timedelta(seconds=60)


def _hook_health(conn, outcomes):
    """Track each hook's failing streak: a success ends it, a failure starts or extends it.

    Each outcome's ``health`` is True (success), False (a failure the receiver is answerable
    for) or None (tells nothing; left out by the caller). A hook with a success in the batch
    counts as succeeded.

    A hook's row is shared by every batch that sends to it, so this writes only what changes
    (a success clears a streak that is there, a failure starts one that is not, last_failure_at
    moves by HEALTH_GRANULARITY) and takes the rows' locks in hook id order: concurrent
    batches then wait for each other at most, never in a circle. Most batches write nothing.
    """
    health = {}
    for o in outcomes:
        ok, first, last = health.get(o["hook_id"], (False, o["started_at"], o["started_at"]))
        health[o["hook_id"]] = (ok or bool(o["health"]), min(first, o["started_at"]), max(last, o["started_at"]))
    if not health:
        return
    rows = [{"id": hook_id, "ok": ok, "first": first, "last": last, "stale": last - HEALTH_GRANULARITY}
            for hook_id, (ok, first, last) in sorted(health.items())]
    if conn.dialect.name == "postgresql":
        _hook_health_pg(conn, rows)
        return
    h = {name: sa.bindparam(f"h_{name}", type_=kind) for name, kind in (
        ("id", sa.Integer), ("ok", sa.Boolean), ("first", sa.DateTime), ("last", sa.DateTime), ("stale", sa.DateTime))}
    conn.execute(
        sa.update(hooks).where(hooks.c.id == h["id"], _health_changes(hooks, h)).values(_health_values(hooks, h)),
        [{f"h_{k}": v for k, v in row.items()} for row in rows])


def _health_changes(hk, v):
    """Whether a hook's row needs writing for its batch outcome ``v`` (ok, first, last, stale)."""
    return sa.or_(
        sa.and_(v["ok"], hk.c.failing_since.is_not(None)),
        sa.and_(sa.not_(v["ok"]), sa.or_(hk.c.failing_since.is_(None), hk.c.last_failure_at.is_(None),
                                         hk.c.last_failure_at < v["stale"])))


def _health_values(hk, v):
    return {
        "failing_since": sa.case((v["ok"], sa.null()), else_=sa.func.coalesce(hk.c.failing_since, v["first"])),
        "last_failure_at": sa.case(
            (sa.and_(sa.not_(v["ok"]), sa.or_(hk.c.last_failure_at.is_(None), hk.c.last_failure_at < v["last"])),
             v["last"]),
            else_=hk.c.last_failure_at),
    }


def _hook_health_pg(conn, rows):
    """One statement. Its subquery locks the rows that change in id order (FOR NO KEY UPDATE
    under ORDER BY locks in that order; it waits rather than skips, as a skipped row would
    lose its update) and hands them with their batch outcome to the UPDATE. After a wait,
    READ COMMITTED checks the row again, so a batch with nothing new to say writes nothing."""
    kinds = {"id": sa.Integer, "ok": sa.Boolean, "first": sa.DateTime, "last": sa.DateTime, "stale": sa.DateTime}

    def build():
        v = _unnest("h", kinds)
        changing = (sa.select(hooks.c.id, v.c.ok, v.c.first, v.c.last)
                    .select_from(hooks.join(v, v.c.id == hooks.c.id))
                    .where(_health_changes(hooks, v.c)).order_by(hooks.c.id)
                    .with_for_update(key_share=True, of=hooks)).subquery("changing")
        target = hooks.alias("target")
        return sa.update(target).where(target.c.id == changing.c.id).values(_health_values(target, changing.c))
    conn.execute(_built("hook_health", build), _arrays("h", kinds, rows))


def _unnest(prefix, kinds):
    """``unnest(CAST(:a AS type[]), ...) AS v(a, ...)``: a batch of rows as one table on
    PostgreSQL, in a statement whose text does not grow with the batch. The arrays are
    parameters (``_arrays``), so the statement can be built once (``_built``)."""
    return sa.func.unnest(*(
        sa.cast(sa.bindparam(f"{prefix}_{name}", type_=postgresql.ARRAY(kind)), postgresql.ARRAY(kind))
        for name, kind in kinds.items()
    )).table_valued(*(sa.column(name, kind) for name, kind in kinds.items()), name="v").render_derived()


def _arrays(prefix, names, rows):
    """The parameters of ``_unnest(prefix, ...)``: one list per column."""
    return {f"{prefix}_{name}": [row[name] for row in rows] for name in names}


_statements = {}


def _built(key, build):
    """The statement ``build()`` makes, built once per ``key``.

    Building a statement and computing its cache key cost SQLAlchemy about a millisecond each
    time, more than running it: the hot statements (claims, records, fan-out) are built once
    with bind parameters and executed with values.
    """
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = build()
    return stmt


def give_back(conn, rows, now):
    """Return claimed deliveries unattempted: the rate limit or a pause kept them from going out.
    ``rows`` are (id, lane status, claimed attempt number, next_attempt_at); the attempt the
    claim counted is taken back, so a throttled delivery never spends one of its attempts."""
    if not rows:
        return
    conn.execute(_built("give_back", lambda: sa.update(deliveries).where(
        deliveries.c.id == sa.bindparam("g_id"), deliveries.c.status == Status.IN_FLIGHT,
        deliveries.c.attempts == sa.bindparam("g_number")).values(
        status=sa.bindparam("g_status"), attempts=deliveries.c.attempts - 1, lease_until=None,
        next_attempt_at=sa.bindparam("g_at"), updated_at=sa.bindparam("g_now", type_=sa.DateTime))),
        [{"g_id": i, "g_status": status, "g_number": number, "g_at": at, "g_now": now}
         for i, status, number, at in rows])


def pause_endpoints(conn, pauses, now):
    """No request to these endpoints before their time: ``pauses`` are (group_id, endpoint,
    until) from receivers' Retry-After. The hooks keep the pause (claims skip them, whatever
    is fanned out meanwhile); deliveries already waiting move to its end, so claims need not
    step over them."""
    for group_id, endpoint, until in sorted(set(pauses)):
        # hook rows locked in id order, as every other writer of hooks does (see _hook_health)
        ids = conn.execute(sa.select(hooks.c.id).where(
            hooks.c.group_id == group_id, hooks.c.endpoint == endpoint,
            sa.or_(hooks.c.paused_until.is_(None), hooks.c.paused_until < until))
            .order_by(hooks.c.id).with_for_update()).scalars().all()
        if not ids:
            continue
        conn.execute(sa.update(hooks).where(hooks.c.id.in_(ids)).values(paused_until=until))
        conn.execute(sa.update(deliveries).where(
            deliveries.c.group_id == group_id, deliveries.c.endpoint == endpoint,
            deliveries.c.status.in_(lifecycle.OPEN), deliveries.c.next_attempt_at < until)
            .values(next_attempt_at=until, updated_at=now))


def cancel(conn, ids, now):
    if ids:
        conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(ids)).values(
            status=Status.CANCELLED, lease_until=None, updated_at=now))


def expire_leases(conn, now, max_attempts, limit=1000, every_lease=False, buried=None):
    """Deliveries whose worker died mid-attempt: record the lost attempt, retry or bury them.

    ``every_lease`` takes back leases that have not expired yet: for a single process
    (standalone) starting up, which knows no other worker holds them. The ids of those that
    went dead are appended to the list ``buried``, when one is given.
    """
    expired = sa.true() if every_lease else deliveries.c.lease_until < now
    # oldest lease first, in a stable order; rows a worker is recording right now are skipped
    # (SKIP LOCKED): its record will find them still in_flight and settle them itself
    lost = conn.execute(_locking(conn, sa.select(
        deliveries.c.id, deliveries.c.attempts, deliveries.c.attempt_base).where(
        deliveries.c.status == Status.IN_FLIGHT, expired)
        .order_by(deliveries.c.lease_until, deliveries.c.id).limit(limit))).all()
    if not lost:
        return 0
    conn.execute(
        _insert(conn, attempts).on_conflict_do_nothing(index_elements=["delivery_id", "number"]),
        [{"delivery_id": row.id, "number": row.attempts, "started_at": now, "duration_ms": 0,
          "error_kind": ErrorKind.WORKER_LOST, "error_detail": "the worker's lease expired before it recorded a result"}
         for row in lost],
    )
    # max_attempts counts within the current series (see deliveries.attempt_base)
    decided = {}
    for row in lost:
        status = lifecycle.decide(Move.LOSE_LEASE, spent=row.attempts - row.attempt_base, max_attempts=max_attempts)
        decided.setdefault(status, []).append(row.id)
    for status, chosen in sorted(decided.items()):
        if chosen:
            conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(chosen)).values(
                status=status, lease_until=None, next_attempt_at=now,
                last_error=ErrorKind.WORKER_LOST, updated_at=now))
            if status is Status.DEAD and buried is not None:
                buried.extend(chosen)
    return len(lost)


def due_backlog(conn, now):
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        deliveries.c.status.in_(lifecycle.OPEN), deliveries.c.next_attempt_at <= now,
        _hook_open(deliveries, now))).scalar_one()


# --- reading deliveries ------------------------------------------------------------------

def trigger_by_id(conn, trigger_id):
    return conn.execute(sa.select(triggers).where(triggers.c.trigger_id == trigger_id)).first()


def deliveries_of_trigger(conn, trigger_pk):
    return conn.execute(sa.select(deliveries).where(deliveries.c.trigger_pk == trigger_pk)
                        .order_by(deliveries.c.created_at, deliveries.c.id)).all()


def delivery(conn, delivery_id):
    return conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()


def attempts_of(conn, delivery_id):
    return conn.execute(sa.select(attempts).where(attempts.c.delivery_id == delivery_id)
                        .order_by(attempts.c.number)).all()


# --- operating deliveries ----------------------------------------------------------------
# The delivery log, redelivery and dead-letter replay, webhook initialization, endpoint
# health and retention. Organization scoping is a filter here (``organization_ids``); None
# means every organization, for the operator's CLI.

#: types after which an entity no longer exists: initialization does not re-send it
GONE_TYPES = ("event_removed", "order_removed")


def _summary_columns():
    return (
        deliveries.c.id, deliveries.c.trigger_pk, deliveries.c.hook_id, deliveries.c.group_id,
        deliveries.c.organization_id, deliveries.c.type, deliveries.c.endpoint, deliveries.c.entity_kind,
        deliveries.c.entity_id, deliveries.c.sequence, deliveries.c.status, deliveries.c.attempts,
        deliveries.c.attempt_base, deliveries.c.source, deliveries.c.next_attempt_at,
        deliveries.c.last_status_code, deliveries.c.last_error, deliveries.c.created_at,
        deliveries.c.updated_at, deliveries.c.delivered_at, deliveries.c.skipped_reason,
        triggers.c.trigger_id, hooks.c.position.label("hook_position"),
        hooks.c.disabled_at.label("hook_disabled_at"), hooks.c.removed_at.label("hook_removed_at"),
    )


def _delivery_filters(*, organization_ids=None, group_id=None, status=None, hook_type=None, since=None,
                      until=None, live_groups=False):
    """WHERE clauses of the listings; ``since``/``until`` bound created_at (until exclusive)."""
    where = []
    if organization_ids is not None:
        where.append(deliveries.c.organization_id.in_(organization_ids))
    if group_id is not None:
        where.append(deliveries.c.group_id == group_id)
    if status is not None:
        where.append(deliveries.c.status == status)
    if hook_type is not None:
        where.append(deliveries.c.type == hook_type)
    if since is not None:
        where.append(deliveries.c.created_at >= since)
    if until is not None:
        where.append(deliveries.c.created_at < until)
    if live_groups:
        where.append(deliveries.c.group_id.in_(
            sa.select(webhook_groups.c.id).where(webhook_groups.c.deleted_at.is_(None))))
    return where


def list_deliveries(conn, limit, offset, **filters):
    """(total, rows) of deliveries matching ``filters`` (see _delivery_filters), newest first."""
    where = _delivery_filters(**filters)
    total = conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(*where)).scalar_one()
    rows = conn.execute(
        sa.select(*_summary_columns())
        .select_from(deliveries.join(triggers).join(hooks))
        .where(*where)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.sequence.desc(), deliveries.c.id.desc())
        .limit(limit).offset(offset)
    ).all()
    return total, rows


def delivery_view(conn, delivery_id):
    """One delivery with its payload, trigger, hook and group state, or None."""
    return conn.execute(
        sa.select(*_summary_columns(), deliveries.c.payload, webhook_groups.c.deleted_at.label("group_deleted_at"))
        .select_from(deliveries.join(triggers).join(hooks).join(webhook_groups,
                                                                 webhook_groups.c.id == deliveries.c.group_id))
        .where(deliveries.c.id == delivery_id)
    ).first()


def restart_series(conn, ids, now, statuses):
    """Give each delivery of ``ids`` that is in one of ``statuses`` a new attempt series.

    Same row, payload and webhook-id; ``attempt_base`` moves to the attempts made so far, so
    the new series again has max_attempts and the attempt numbers go on growing. The row
    keeps its sequence: the ordering rule sorts it among its entity's deliveries.
    The rows are due at once: the workers' next claim takes them (the caller may nudge the
    send loops after the commit). Returns the ids restarted.
    """
    if not ids:
        return []
    return conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id.in_(ids), deliveries.c.status.in_(statuses))
        .values(status=Status.PENDING, attempt_base=deliveries.c.attempts, next_attempt_at=now,
                delivered_at=None, skipped_reason=None, lease_until=None, updated_at=now)
        .returning(deliveries.c.id)
    ).scalars().all()


def replay_dead(conn, now, limit, **filters):
    """Restart up to ``limit`` dead deliveries of live groups matching ``filters``, oldest
    (by sequence) first; returns their ids in that order."""
    chosen = conn.execute(
        sa.select(deliveries.c.id)
        .where(*_delivery_filters(status=Status.DEAD, live_groups=True, **filters))
        .order_by(deliveries.c.sequence, deliveries.c.trigger_pk, deliveries.c.id)
        .limit(limit)
    ).scalars().all()
    restarted = set(restart_series(conn, chosen, now, lifecycle.sources(Move.REPLAY)))
    return [i for i in chosen if i in restarted]


def count_deliveries(conn, **filters):
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                        .where(*_delivery_filters(**filters))).scalar_one()


def latest_request_headers(conn, delivery_id):
    """The (redacted) request headers of the delivery's latest attempt that sent a request."""
    return conn.execute(
        sa.select(attempts.c.request_headers)
        .where(attempts.c.delivery_id == delivery_id, attempts.c.request_headers.is_not(None))
        .order_by(attempts.c.number.desc()).limit(1)
    ).scalar()


# endpoint health

def disable_hooks(conn, hook_ids, reason, now):
    """Disable hooks that are not disabled yet (the first reason and time are kept); returns
    the ids this call disabled."""
    if not hook_ids:
        return []
    # a hook's row is shared with every batch recording its health: lock in id order (see _hook_health)
    chosen = sa.select(hooks.c.id).where(hooks.c.id.in_(sorted(set(hook_ids))), hooks.c.disabled_at.is_(None))
    if conn.dialect.name == "postgresql":
        chosen = chosen.order_by(hooks.c.id).with_for_update(key_share=True)
    return conn.execute(sa.update(hooks).where(hooks.c.id.in_(chosen.scalar_subquery()), hooks.c.disabled_at.is_(None))
                        .values(disabled_at=now, disabled_reason=reason[:255]).returning(hooks.c.id)).scalars().all()


def failing_hooks(conn, cutoff, limit=100):
    """Enabled live hooks of live groups that failed every attempt since before ``cutoff`` and
    failed again since: their streak began before it and their latest failure is after it.
    One indexed query (ix_hooks_failing_since); rows another scheduler holds are skipped."""
    return conn.execute(_locking(conn, sa.select(hooks.c.id, hooks.c.failing_since).where(
        hooks.c.failing_since < cutoff, hooks.c.last_failure_at >= cutoff,
        hooks.c.disabled_at.is_(None), hooks.c.removed_at.is_(None),
        hooks.c.group_id.in_(sa.select(webhook_groups.c.id).where(webhook_groups.c.deleted_at.is_(None))),
    ).order_by(hooks.c.failing_since).limit(limit))).all()


def enable_hook(conn, hook_id, now):
    """Enable a disabled hook; its waiting deliveries become due. Returns how many were waiting,
    or None for a hook that was not disabled (nothing changes). Its failing streak starts over.

    Retries are brought forward to ``now`` (the receiver is back: no need to sit out a
    backoff chosen while it was failing); pending rows keep their time, so an
    initialization stays paced. The workers' next claim takes whatever is due.
    """
    enabled = conn.execute(sa.update(hooks).where(hooks.c.id == hook_id, hooks.c.disabled_at.is_not(None))
                           .values(disabled_at=None, disabled_reason=None, failing_since=None)).rowcount
    if not enabled:
        return None
    conn.execute(sa.update(deliveries).where(
        deliveries.c.hook_id == hook_id, deliveries.c.status == Status.RETRYING, deliveries.c.next_attempt_at > now,
    ).values(next_attempt_at=now, updated_at=now))
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        deliveries.c.hook_id == hook_id, deliveries.c.status.in_(lifecycle.OPEN))).scalar_one()


def hook_details(conn, hook_ids):
    """Hooks with their group (for operational events), by id."""
    if not hook_ids:
        return {}
    return {row.id: row for row in conn.execute(
        sa.select(hooks.c.id, hooks.c.group_id, hooks.c.position, hooks.c.type_key, hooks.c.endpoint,
                  hooks.c.disabled_at, hooks.c.disabled_reason, hooks.c.removed_at)
        .where(hooks.c.id.in_(hook_ids)))}


def exhausted_details(conn, delivery_ids):
    """Dead deliveries with their trigger and hook (for delivery.exhausted events)."""
    if not delivery_ids:
        return []
    return conn.execute(
        sa.select(deliveries.c.id, deliveries.c.group_id, deliveries.c.type, deliveries.c.endpoint,
                  deliveries.c.entity_kind, deliveries.c.entity_id, deliveries.c.attempts,
                  deliveries.c.last_status_code, deliveries.c.last_error, triggers.c.trigger_id,
                  hooks.c.position.label("hook_position"), hooks.c.removed_at.label("hook_removed_at"))
        .select_from(deliveries.join(triggers).join(hooks))
        .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == Status.DEAD)
        .order_by(deliveries.c.sequence, deliveries.c.trigger_pk)
    ).all()


# operational notifications (the outbox)

def add_notifications(conn, rows):
    """Queue events for the groups among the rows' that have a notify_url; returns how many."""
    if not rows:
        return 0
    wanted = set(conn.execute(sa.select(webhook_groups.c.id).where(
        webhook_groups.c.id.in_({r["group_id"] for r in rows}), webhook_groups.c.notify_url.is_not(None),
        webhook_groups.c.deleted_at.is_(None))).scalars())
    kept = [r for r in rows if r["group_id"] in wanted]
    if kept:
        conn.execute(sa.insert(notifications), kept)
    return len(kept)


def take_notifications(conn, now, lease_seconds, limit):
    """Claim up to ``limit`` due notifications for one attempt (their next try moves a lease
    ahead, so a sender that dies leaves them to a later sweep); returns them with the group's
    notify_url, signing secret and deletion time."""
    due = _locking(conn, sa.select(notifications.c.id).where(
        notifications.c.status == NotificationStatus.PENDING, notifications.c.next_attempt_at <= now,
    ).order_by(notifications.c.next_attempt_at).limit(limit))
    ids = conn.execute(
        sa.update(notifications).where(notifications.c.id.in_(due.scalar_subquery()))
        .values(attempts=notifications.c.attempts + 1, updated_at=now,
                next_attempt_at=now + datetime.timedelta(seconds=lease_seconds))
        .returning(notifications.c.id)).scalars().all()
    if not ids:
        return []
    return conn.execute(
        sa.select(notifications, webhook_groups.c.notify_url, webhook_groups.c.signing_secret_enc,
                  webhook_groups.c.previous_signing_secret_enc, webhook_groups.c.previous_signing_until,
                  webhook_groups.c.deleted_at.label("group_deleted_at"))
        .select_from(notifications.join(webhook_groups))
        .where(notifications.c.id.in_(ids)).order_by(notifications.c.created_at)).all()


def record_notification(conn, notification_id, attempt, status, next_attempt_at, status_code, error, now):
    """The outcome of one notification attempt (changes nothing if a later claim took it over)."""
    conn.execute(sa.update(notifications).where(
        notifications.c.id == notification_id, notifications.c.attempts == attempt,
        notifications.c.status == NotificationStatus.PENDING,
    ).values(status=status, next_attempt_at=next_attempt_at, last_status_code=status_code,
             last_error=error[:1000] if error else None, updated_at=now,
             sent_at=now if status == NotificationStatus.SENT else None))


def notifications_of(conn, group_id):
    return conn.execute(sa.select(notifications).where(notifications.c.group_id == group_id)
                        .order_by(notifications.c.created_at, notifications.c.id)).all()


# initialization

def latest_snapshots(conn, entity_kind, *, organization_ids=None, event_id=None, updated_after=None,
                     updated_before=None):
    """The latest stored trigger of each matching entity (by occurred_at, then arrival), oldest first.

    Entities whose latest trigger removed them are left out: they no longer exist.
    ``updated_after``/``updated_before`` bound that latest trigger's occurred_at (inclusive).
    """
    where = [triggers.c.entity_kind == entity_kind]
    if organization_ids is not None:
        where.append(triggers.c.organization_id.in_(organization_ids))
    if event_id is not None:
        where.append(triggers.c.event_id == event_id)
    ranked = sa.select(
        triggers,
        sa.func.row_number().over(
            partition_by=(triggers.c.organization_id, triggers.c.entity_kind, triggers.c.entity_id),
            order_by=(triggers.c.occurred_at.desc(), triggers.c.id.desc()),
        ).label("rank"),
    ).where(*where).subquery()
    latest = [ranked.c.rank == 1, ranked.c.type.not_in(GONE_TYPES)]
    if updated_after is not None:
        latest.append(ranked.c.occurred_at >= updated_after)
    if updated_before is not None:
        latest.append(ranked.c.occurred_at <= updated_before)
    return conn.execute(sa.select(ranked).where(*latest).order_by(ranked.c.occurred_at, ranked.c.id)).all()


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
                          hooks.c.disabled_at, hooks.c.disabled_reason)
                .select_from(hooks.join(g)).where(*where)
                .order_by(g.c.created_at, g.c.id, hooks.c.position))
    shape = (organization_ids is not None, group_id is not None)
    params = {"h_types": sorted(hook_types)}
    if shape[0]:
        params["h_orgs"] = sorted(organization_ids)
    if shape[1]:
        params["h_group"] = group_id
    return conn.execute(_built(("hooks_for_types", *shape), lambda: build(*shape)), params).all()


def init_schedule_end(conn, organization_ids):
    """The latest time an open initialization delivery of these organizations is due, or None."""
    stmt = sa.select(sa.func.max(deliveries.c.next_attempt_at)).where(
        deliveries.c.source == "init", deliveries.c.status == Status.PENDING)
    if organization_ids is not None:
        stmt = stmt.where(deliveries.c.organization_id.in_(organization_ids))
    return conn.execute(stmt).scalar()


def add_deliveries(conn, rows, chunk=5000):
    for start in range(0, len(rows), chunk):
        conn.execute(*_bulk_insert(conn, deliveries, rows[start:start + chunk]))


def _bulk_insert(conn, table, rows):
    """(statement, parameters) inserting many rows (dicts with the same keys) at a Python cost
    that hardly grows per row.

    On PostgreSQL: ``INSERT ... SELECT * FROM unnest(:col1, :col2, ...)``, one array per column,
    so the statement text is the same whatever the batch size (compiled once, cached) and
    psycopg2 adapts each array in C. On SQLite (in-process, one writer): an executemany.
    """
    if conn.dialect.name != "postgresql":
        return _insert(conn, table), rows
    names = tuple(rows[0])

    def build():
        v = _unnest(table.name, {name: table.c[name].type for name in names})
        return _insert(conn, table).from_select(names, sa.select(*(v.c[name] for name in names)))
    return _built(("insert", table.name, names), build), _arrays(table.name, names, rows)


# retention

def purge_delivered(conn, cutoff, limit):
    """Delete up to ``limit`` deliveries delivered before ``cutoff`` and their attempts; returns how many."""
    ids = conn.execute(_locking(conn, sa.select(deliveries.c.id).where(
        deliveries.c.status == Status.DELIVERED, deliveries.c.delivered_at < cutoff).limit(limit))).scalars().all()
    if ids:
        conn.execute(sa.delete(attempts).where(attempts.c.delivery_id.in_(ids)))
        conn.execute(sa.delete(deliveries).where(deliveries.c.id.in_(ids)))
    return len(ids)


def purge_triggers(conn, cutoff, limit, keep_latest=True):
    """Delete up to ``limit`` triggers received before ``cutoff`` that no delivery names.

    ``keep_latest`` keeps each entity's latest trigger: it is the snapshot initialization
    re-sends. Returns how many were deleted.
    """
    newer = triggers.alias("newer")
    where = [triggers.c.received_at < cutoff,
             ~sa.exists().where(deliveries.c.trigger_pk == triggers.c.id)]
    if keep_latest:
        where.append(sa.exists().where(
            newer.c.organization_id == triggers.c.organization_id, newer.c.entity_kind == triggers.c.entity_kind,
            newer.c.entity_id == triggers.c.entity_id,
            sa.or_(newer.c.occurred_at > triggers.c.occurred_at,
                   sa.and_(newer.c.occurred_at == triggers.c.occurred_at, newer.c.id > triggers.c.id))))
    ids = conn.execute(sa.select(triggers.c.id).where(*where).limit(limit)).scalars().all()
    if ids:
        conn.execute(sa.delete(triggers).where(triggers.c.id.in_(ids)))
    return len(ids)


def count_purgeable(conn, cutoff):
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        deliveries.c.status == Status.DELIVERED, deliveries.c.delivered_at < cutoff)).scalar_one()
