"""GET /v1/organizers/current/organizations: the caller's organizations, teams and roles."""

from marshmallow import Schema
from marshmallow import fields

from app.api.envelopes import SECURITY
from app.api.envelopes import SelfLinksSchema
from app.api.envelopes import success
from app.auth import current_caller
from app.errors import ApiBlueprint
from services.tenancy import WRITE_ROLES

blp = ApiBlueprint("organizers", __name__, description="The calling organizer.")

PERMISSIONS = {
    "team_admin": ["Webhook:View", "Webhook:Edit"],
    "team_member": ["Webhook:View", "Webhook:Edit"],
    "team_viewer": ["Webhook:View"],
}


class TeamSchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    role = fields.String()


class OrganizationSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    canEdit = fields.Boolean()
    teams = fields.List(fields.Nested(TeamSchema))


class ActiveTeamSchema(Schema):
    permissions = fields.List(fields.String())
    id = fields.Integer()
    name = fields.String(allow_none=True)
    organization_id = fields.Integer()
    user_id = fields.Integer()
    role = fields.String()
    is_all_events_team = fields.Boolean()
    show_info_box = fields.Raw(allow_none=True)
    user_count = fields.Integer(allow_none=True)
    live_events_count = fields.Integer(allow_none=True)


class OrganizationsSchema(Schema):
    organizations = fields.List(fields.Nested(OrganizationSchema))
    active_team = fields.Nested(ActiveTeamSchema, allow_none=True)
    _links = fields.Nested(SelfLinksSchema, data_key="_links", attribute="_links")


@blp.route("/organizers/current/organizations", methods=["GET"])
@blp.response(200, OrganizationsSchema)
@blp.doc(security=SECURITY)
def current_organizations():
    """The caller's organizations with their teams and roles; the first team is the active one."""
    caller = current_caller()
    organizations = {}
    for m in caller.memberships:
        org = organizations.setdefault(m.organization_id, {
            "id": m.organization_id, "name": m.organization_name, "canEdit": False, "teams": []})
        org["teams"].append({"id": m.team_id, "name": m.team_name, "role": m.role})
        org["canEdit"] = org["canEdit"] or m.role in WRITE_ROLES
    active = None
    if caller.memberships:
        m = caller.memberships[0]
        active = {
            "permissions": PERMISSIONS.get(m.role, []), "id": m.team_id, "name": m.team_name,
            "organization_id": m.organization_id, "user_id": caller.organizer_id, "role": m.role,
            "is_all_events_team": bool(m.is_all_events_team), "show_info_box": None,
            "user_count": None, "live_events_count": None,
        }
    body = success(organizations=list(organizations.values()), active_team=active)
    for key in ("response_status", "developer_message", "user_message"):
        body.pop(key)
    return body
