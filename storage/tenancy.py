"""Who may do what: organizations, teams, organizers and their memberships, API credentials,
access tokens and the platform's keys."""

import sqlalchemy as sa

from storage.tables import access_tokens
from storage.tables import credentials
from storage.tables import memberships
from storage.tables import organizations
from storage.tables import organizers
from storage.tables import platform_keys
from storage.tables import teams


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
