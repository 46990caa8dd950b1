"""Operational notifications (the outbox): queued for groups with a notify_url, claimed for an
attempt under a lease, and their outcomes."""

import datetime

import sqlalchemy as sa

from storage import statements
from storage.lifecycle import NotificationStatus
from storage.tables import notifications
from storage.tables import webhook_groups


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
    due = statements.skip_locked(conn, sa.select(notifications.c.id).where(
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
