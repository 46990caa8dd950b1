"""The ledger's tables (SQLAlchemy Core). Alembic migrations in storage/migrations create them.

Timestamps are stored as timezone-naive UTC (SQLite has no time zones); ``storage.db.utcnow``
is the one clock.
"""

import sqlalchemy as sa

from storage.lifecycle import NotificationStatus
from storage.lifecycle import Status

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

JSONText = sa.Text  # JSON is kept as text: byte-exact payloads, same on SQLite and PostgreSQL


def _one_of(statuses):
    return "status IN (" + ", ".join(f"'{status.value}'" for status in statuses) + ")"

organizations = sa.Table(
    "organizations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("organization_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False, index=True),
    sa.Column("name", sa.String(255)),
    sa.Column("is_all_events_team", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

organizers = sa.Table(
    "organizers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(255), nullable=False, unique=True),
    sa.Column("name", sa.String(255)),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

memberships = sa.Table(
    "memberships", metadata,
    sa.Column("organizer_id", sa.Integer, sa.ForeignKey("organizers.id"), primary_key=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("role", sa.String(50), nullable=False),
)

# API keys, client secrets and access tokens are random 256-bit values: one SHA-256 is
# enough to make a leaked table useless, and keeps every authenticated call one index lookup.
credentials = sa.Table(
    "credentials", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("organizer_id", sa.Integer, sa.ForeignKey("organizers.id"), nullable=False, index=True),
    sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("client_id", sa.String(64), nullable=False, unique=True),
    sa.Column("client_secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime),
)

access_tokens = sa.Table(
    "access_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("credential_id", sa.Integer, sa.ForeignKey("credentials.id"), nullable=False, index=True),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

platform_keys = sa.Table(
    "platform_keys", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime),
)

webhook_groups = sa.Table(
    "webhook_groups", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("organization_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False, index=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.String(1000)),
    sa.Column("event_id", sa.String(64)),
    sa.Column("event_guide_id", sa.String(64)),
    # authentication without its secret, as JSON text; the secret lives encrypted beside it
    sa.Column("authentication", JSONText),
    sa.Column("client_secret_enc", sa.Text),
    sa.Column("signing_secret_enc", sa.Text),
    # after a rotation the previous secret signs beside the new one until previous_signing_until
    # (SIGNING_GRACE), so receivers can switch without refusing a single request
    sa.Column("previous_signing_secret_enc", sa.Text),
    sa.Column("previous_signing_until", sa.DateTime),
    # requests per second to each endpoint of the group, unless a hook says otherwise; NULL: no limit
    sa.Column("max_per_second", sa.Float),
    # where operational events (workers.notifications) go; needs the signing secret
    sa.Column("notify_url", sa.String(2000)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("deleted_at", sa.DateTime),
)

hooks = sa.Table(
    "hooks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.String(36), sa.ForeignKey("webhook_groups.id"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("type_key", sa.String(128), nullable=False),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("endpoint", sa.String(2000), nullable=False),
    sa.Column("origin_method", sa.String(10)),
    sa.Column("origin_endpoint", sa.String(2000)),
    sa.Column("origin_body", sa.Text),
    sa.Column("disabled_at", sa.DateTime),
    sa.Column("disabled_reason", sa.String(255)),
    # requests per second to this hook's endpoint (wins over the group's); NULL: the group's
    sa.Column("max_per_second", sa.Float),
    # no request to this endpoint before then: the receiver answered 429/503 with Retry-After
    sa.Column("paused_until", sa.DateTime),
    # endpoint health: the first failed attempt since the last success (NULL: not failing),
    # and the latest failed attempt; the scheduler disables a hook failing for DISABLE_AFTER
    sa.Column("failing_since", sa.DateTime),
    sa.Column("last_failure_at", sa.DateTime),
    # a PUT replaces hooks; old rows stay (deliveries point at them) but no longer match
    sa.Column("removed_at", sa.DateTime),
    sa.Index("ix_hooks_failing_since", "failing_since"),
)

triggers = sa.Table(
    "triggers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trigger_id", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("organization_id", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(64)),
    sa.Column("event_guide_id", sa.String(64)),
    sa.Column("entity_kind", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(64), nullable=False),
    sa.Column("entity", JSONText, nullable=False),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("delivery_count", sa.Integer, nullable=False, default=0),
    sa.Index("ix_triggers_org_kind_entity", "organization_id", "entity_kind", "entity_id"),
)

# status: storage.lifecycle.Status, and the moves between them are there too.
# A trigger matching a disabled hook makes a ``skipped`` row (terminal, never sent unless
# redelivered; ``skipped_reason`` says why). A pending or retrying row whose hook was disabled
# later waits: no worker claims it until the hook is enabled again.
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("trigger_pk", sa.Integer, sa.ForeignKey("triggers.id"), nullable=False, index=True),
    sa.Column("hook_id", sa.Integer, sa.ForeignKey("hooks.id"), nullable=False),
    # indexed by ix_deliveries_group_created, whose first column it is
    sa.Column("group_id", sa.String(36), sa.ForeignKey("webhook_groups.id"), nullable=False),
    sa.Column("organization_id", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("endpoint", sa.String(2000), nullable=False),
    sa.Column("entity_kind", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(64), nullable=False),
    # Deliveries that share an ordering key go out in (sequence, trigger_pk) order.
    sa.Column("ordering_key", sa.String(128), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # Attempts made before the current series: a redelivery or replay starts a new series of
    # max_attempts at attempts + 1, so attempt numbers keep growing and stay unique.
    sa.Column("attempt_base", sa.Integer, nullable=False, default=0, server_default="0"),
    # why the row exists: "trigger" (fan-out) or "init" (webhook initialization, paced)
    sa.Column("source", sa.String(16), nullable=False, default="trigger", server_default="trigger"),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("lease_until", sa.DateTime),
    sa.Column("payload", sa.Text),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.String(32)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("skipped_reason", sa.String(255)),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_deliveries_ordering", "ordering_key", "status", "sequence"),
    # dead letters and retention: one organization's rows of one status, by time
    sa.Index("ix_deliveries_org_status_created", "organization_id", "status", "created_at"),
    # the lifecycle's statuses and nothing else (migration 0008; triggers on SQLite)
    sa.CheckConstraint(_one_of(Status), name="ck_deliveries_status"),
    # a group's rows newest first (its deliveries, its timeline, delete_group); and the
    # initialization rows only (progress): every index here costs every write of the hot path
    sa.Index("ix_deliveries_group_created", "group_id", "created_at", "id", postgresql_include=["status"]),
    sa.Index("ix_deliveries_init", "organization_id", "status",
             postgresql_where=sa.text("source = 'init'"), sqlite_where=sa.text("source = 'init'")),
)

attempts = sa.Table(
    "attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("delivery_id", sa.String(36), sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error_kind", sa.String(32)),
    sa.Column("error_detail", sa.String(1000)),
    sa.Column("response_excerpt", sa.Text),
    sa.Column("request_headers", JSONText),
    sa.UniqueConstraint("delivery_id", "number"),
    # the dashboard's health at a glance: the attempts of the last 24 hours
)

# Dashboard sessions (app/dashboard): the cookie holds a random 256-bit id, the table its
# SHA-256 (like API keys and tokens); a revoked credential ends its sessions at once.
dashboard_sessions = sa.Table(
    "dashboard_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("credential_id", sa.Integer, sa.ForeignKey("credentials.id"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

# Attempts per hook and hour (storage.hook_stats), counted as batches are recorded: the
# dashboard's health at a glance, without reading a day of attempts.
hook_stats = sa.Table(
    "hook_stats", metadata,
    sa.Column("hook_id", sa.Integer, sa.ForeignKey("hooks.id"), primary_key=True),
    sa.Column("hour", sa.DateTime, primary_key=True),
    sa.Column("succeeded", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("last_at", sa.DateTime, nullable=False),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error_kind", sa.String(32)),
)

# The outbox of operational events (workers.notifications): written in the transaction that
# changed the state, sent to the group's notify_url by the scheduler.
# status: storage.lifecycle.NotificationStatus
notifications = sa.Table(
    "notifications", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("group_id", sa.String(36), sa.ForeignKey("webhook_groups.id"), nullable=False, index=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.String(1000)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
    sa.Index("ix_notifications_due", "status", "next_attempt_at"),
    sa.CheckConstraint(_one_of(NotificationStatus), name="ck_notifications_status"),
)

# Triggers waiting for fan-out in embedded mode (no broker): ``emit()`` from any process on
# the machine and ``POST /v1/triggers`` add rows; standalone's intake takes them in id order
# and deletes them in the transaction that stores their deliveries (workers.intake).
inbox = sa.Table(
    "inbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
