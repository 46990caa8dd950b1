"""The dashboard's pages: a thin face over the same use cases as the API (services/).

Every read and every change calls a function of services/ with the session's Caller, so
tenancy is the API's (another organization's id is a 404) and the two faces cannot disagree:
redeliver, enable, replay and initialization are the API's own use cases. Only the keyset
listings, health and timeline reads are the dashboard's (services.deliveries.browse,
services.webhook_groups.overview and timeline, over storage/dashboard.py).
"""

import datetime
import json

from flask import Blueprint
from flask import abort
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from markupsafe import Markup
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from app import deliveries as views
from app.api.deliveries import STATUSES
from app.api.initialization import InitSchema
from app.dashboard import charts
from app.dashboard import listing
from app.dashboard import sessions
from app.context import context
from services import access
from services import deliveries as delivery_service
from services import initialization as init_service
from services import webhook_groups
from services.errors import Invalid
from services.errors import NotFound
from services.errors import Refused
from services.errors import Unauthorized
from schemas.types import RESOURCES
from schemas.types import TYPES
from storage import lifecycle
from storage.db import utcnow
from storage.lifecycle import Move
from storage.lifecycle import Status

blp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
                static_folder="static", static_url_path="/static")

MAX_GROUPS = 500
MAX_SELECTED = 200
PUBLIC_ENDPOINTS = ("dashboard.login", "dashboard.static")
#: nothing from another host, no inline script or style; the SVG uses attributes, not styles
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


# --- every request -----------------------------------------------------------------------

@blp.before_request
def require_session():
    """Anything but the login page and the stylesheet needs a live session; every POST its CSRF token."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.method == "POST":
            sessions.check_csrf()
        return None
    session = sessions.current()
    if session is None:
        if request.method == "POST":
            abort(401, description="Your session has ended: log in again.")
        return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")), 303)
    if request.method == "POST":
        sessions.check_csrf()
    g.caller = session.caller  # memberships as they are now: a changed role counts at once
    return None


@blp.after_request
def harden(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"  # delivery data stays out of shared caches
    return response


@blp.errorhandler(Refused)
def refused_page(exc):
    """A use case's refusal (services.errors), on the page rather than in a JSON envelope."""
    message = exc.message
    if exc.errors:
        message = f"{message or 'The form is not valid'}: {listing.flat(exc.errors)}"
    return render_template("error.html", status=exc.status, name=HTTP_STATUS_CODES.get(exc.status, "Error"),
                           message=message), exc.status


@blp.errorhandler(HTTPException)
def error_page(error):
    """The API's aborts carry their message in ``data``; the page shows it, not a JSON envelope."""
    data = getattr(error, "data", None) or {}
    message = data.get("message") or error.description
    if data.get("errors"):
        message = f"{message or 'The form is not valid'}: {listing.flat(data['errors'])}"
    return render_template("error.html", status=error.code, name=error.name, message=message), error.code


@blp.app_template_global()
def csrf_token():
    session = sessions.current()
    return session.csrf_token if session is not None else sessions.login_token()


@blp.app_template_global()
def can_write(organization_id):
    return organization_id in g.caller.organization_ids(write=True)


@blp.app_template_filter("when")
def when(value):
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


@blp.app_template_filter("ago")
def ago(value):
    if value is None:
        return "never"
    seconds = int((utcnow() - value).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if abs(seconds) >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _organizations():
    names = {}
    for m in g.caller.memberships:
        names.setdefault(m.organization_id, m.organization_name)
    return names


def _redirect(endpoint, **args):
    return redirect(url_for(endpoint, **args), 303)


# --- login and logout --------------------------------------------------------------------

@blp.route("/login", methods=["GET", "POST"])
def login():
    """The organizer's API credentials, exactly what POST /v1/oauth takes (api key, client id and secret)."""
    error = None
    if request.method == "POST":
        try:
            value = access.log_in(context(), request.form.get("api_key", "").strip(),
                                  request.form.get("client_id", "").strip(), request.form.get("client_secret", ""))
        except Unauthorized as exc:
            error = exc.message
        else:
            response = redirect(_safe_next(request.form.get("next")), 303)
            sessions.set_cookie(response, sessions.COOKIE, value, context().settings.session_ttl)
            sessions.clear_cookie(response, sessions.LOGIN_COOKIE)
            return response
    response = make_response(render_template("login.html", error=error, next=request.values.get("next", "")),
                             401 if error else 200)
    sessions.set_cookie(response, sessions.LOGIN_COOKIE, sessions.login_token(), 3600)
    return response


def _safe_next(target):
    """Only a path of the dashboard itself: never an open redirect to another host."""
    if target and target.startswith("/dashboard/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.groups")


@blp.route("/logout", methods=["POST"])
def logout():
    sessions.end()
    response = redirect(url_for("dashboard.login"), 303)
    sessions.clear_cookie(response, sessions.COOKIE)
    return response


# --- groups and hooks --------------------------------------------------------------------

@blp.route("/")
def groups():
    """Every live group of the caller's organizations, each hook with its health over 24 h."""
    found = webhook_groups.overview(context(), g.caller, utcnow(), MAX_GROUPS)
    return render_template("groups.html", groups=found.groups, hooks=found.hooks, health=found.health,
                           waiting=found.waiting, organizations=_organizations(), truncated=found.truncated,
                           enabled=request.args.get("enabled"), now_waiting=request.args.get("waiting"))


@blp.route("/groups/<group_id>/hooks/<int:index>/enable", methods=["POST"])
def enable(group_id, index):
    hook = delivery_service.enable_hook(context(), g.caller, group_id, index)
    return _redirect("dashboard.groups", enabled=hook["endpoint"], waiting=hook["waiting"])


# --- timeline ----------------------------------------------------------------------------

@blp.route("/groups/<group_id>/timeline")
def timeline(group_id):
    try:
        days = min(max(int(request.args.get("days", 3)), 1), 14)
    except ValueError:
        days = 3
    now = utcnow()
    start = now.replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=24 * days - 1)
    found = webhook_groups.timeline(context(), g.caller, group_id, start)
    buckets = charts.hourly(found.rows, start, 24 * days)
    totals = {}
    for _, status, n in found.rows:
        totals[status] = totals.get(status, 0) + n
    chart = Markup(charts.svg(buckets, f"{found.group.name}: deliveries per hour, last {days} days"))
    return render_template("timeline.html", group=found.group, chart=chart, days=days, totals=totals,
                           series=charts.SERIES)


# --- deliveries --------------------------------------------------------------------------

@blp.route("/deliveries")
def deliveries():
    raw, args = listing.args_of(request.args)
    items, links, group_names = listing.page(context(), g.caller, raw, args, MAX_GROUPS)
    return render_template("deliveries.html", items=items, links=links, filters=raw, statuses=STATUSES,
                           types=sorted(TYPES), groups=group_names)


@blp.route("/deliveries/<delivery_id>")
def delivery(delivery_id):
    found = delivery_service.delivery(context(), g.caller, delivery_id)
    row = found.row
    item = views.detail(row, found.attempts, found.request_headers, {"self": request.path})
    payload = None if item["payload"] is None else json.dumps(item["payload"], indent=2, ensure_ascii=False)
    return render_template("delivery.html", d=item, row=row, payload=payload,
                           redeliverable=row.status in lifecycle.sources(Move.REDELIVER) and row.group_deleted_at is None,
                           redelivered=request.args.get("redelivered"))


@blp.route("/deliveries/<delivery_id>/redeliver", methods=["POST"])
def redeliver(delivery_id):
    delivery_service.redeliver(context(), g.caller, delivery_id)
    return _redirect("dashboard.delivery", delivery_id=delivery_id, redelivered=1)


# --- dead letters ------------------------------------------------------------------------

@blp.route("/dead-letters")
def dead_letters():
    raw, args = listing.args_of({k: v for k, v in request.args.items() if k != "status"})
    items, links, group_names = listing.page(context(), g.caller, raw, args, MAX_GROUPS, status=Status.DEAD,
                                             live_groups=True)
    result = {k: request.args.get(k) for k in ("replayed", "remaining", "refused") if request.args.get(k)}
    return render_template("dead_letters.html", items=items, links=links, filters=raw, types=sorted(TYPES),
                           groups=group_names, result=result)


@blp.route("/dead-letters/replay", methods=["POST"])
def replay():
    """Replay one dead letter (``action=one:<id>``), the selected ones, or all matching the filters."""
    action = request.form.get("action", "")
    raw, args = listing.args_of(request.form)
    if action == "all":
        ids, remaining = delivery_service.replay(context(), g.caller, group_id=args.get("group"),
                                                 hook_type=args.get("type"), since=args.get("since"),
                                                 until=args.get("until"))
        refused = 0
    else:
        chosen = [action[4:]] if action.startswith("one:") else request.form.getlist("id")[:MAX_SELECTED]
        if not chosen or any("\x00" in i for i in chosen):
            abort(400, description="Choose the dead letters to replay.")
        ids, refused = delivery_service.replay_chosen(context(), g.caller, chosen)
        remaining = None
    keep = {k: v for k, v in raw.items() if k not in ("before", "after")}
    result = dict(replayed=len(ids), refused=refused)
    if remaining is not None:
        result["remaining"] = remaining
    return _redirect("dashboard.dead_letters", **keep, **result)


# --- initialization ----------------------------------------------------------------------

@blp.route("/initialization", methods=["GET", "POST"])
def initialization():
    """Re-send existing events, orders or attendees (the API's initialization), and its progress."""
    error, status, form = None, 200, {}
    if request.method == "POST":
        form = {k: v.strip() for k, v in request.form.items() if k != "csrf_token"}
        form["webhook_type"] = request.form.getlist("webhook_type")
        try:
            started = init_service.start(context(), g.caller, request.form.get("resource", ""),
                                         _init_body(request.form))
        except (Invalid, NotFound) as exc:  # said on the form; Forbidden gets the error page
            error, status = (listing.flat(exc.errors) if exc.errors else exc.message), exc.status
        else:
            return _redirect("dashboard.initialization", items=started["items_processed"],
                             queued=started["deliveries_queued"])
    progress = init_service.progress(context(), g.caller, MAX_GROUPS)
    return render_template("initialization.html", error=error, form=form, progress=progress.organizations,
                           resources=sorted(RESOURCES), types=sorted(TYPES), groups=progress.groups,
                           organizations=_organizations(), writable=g.caller.organization_ids(write=True),
                           started=request.args.get("queued"), items=request.args.get("items")), status


def _init_body(form):
    """The form as the API's InitSchema loads a body (same fields, same validation)."""
    raw = {k: v.strip() for k, v in form.items() if v.strip() and k in InitSchema().fields}
    raw.pop("webhook_type", None)
    types = [t for t in form.getlist("webhook_type") if t.strip()]
    if types:
        raw["webhook_type"] = types
    try:
        return InitSchema().load(raw)
    except ValidationError as exc:
        raise Invalid(exc.messages) from None
