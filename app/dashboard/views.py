"""The dashboard's pages: a thin face over what the API does.

Reading goes through the API's tenancy checks (``app.tenancy``:
another organization's id is a 404, as in the API); every change calls the function the
API's endpoint calls (redeliver, enable, replay, initialization), so the two faces cannot
disagree. Only the keyset listings, health and timeline queries are the dashboard's own
(storage/dashboard.py).
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
from flask_smorest import abort as smorest_abort
from markupsafe import Markup
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from app import deliveries as views
from app.api import initialization as init_api
from app.api.deliveries import STATUSES
from app.auth import caller_of
from app.auth import client_matches
from app.auth import credential_for
from app.dashboard import charts
from app.dashboard import listing
from app.dashboard import sessions
from app import tenancy
from app.context import context
from app.services import services
from services import deliveries as delivery_service
from services.errors import Refused
from schemas.types import RESOURCES
from schemas.types import TYPES
from storage import dashboard as store
from storage import hook_stats
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
    with services().engine.begin() as conn:  # memberships as they are now: a changed role counts at once
        g.caller = caller_of(conn, session)
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
        api_key = request.form.get("api_key", "").strip()
        client_id = request.form.get("client_id", "").strip()
        client_secret = request.form.get("client_secret", "")
        with services().engine.begin() as conn:
            credential = credential_for(conn, api_key)
            if credential is not None and client_id and client_matches(credential, client_id, client_secret):
                value = sessions.begin(conn, credential)
            else:
                value = None
        if value is not None:
            response = redirect(_safe_next(request.form.get("next")), 303)
            sessions.set_cookie(response, sessions.COOKIE, value, services().settings.session_ttl)
            sessions.clear_cookie(response, sessions.LOGIN_COOKIE)
            return response
        error = "The API key, client id and client secret do not match an active credential."
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
    svc = services()
    now = utcnow()
    with svc.engine.begin() as conn:
        rows, hooks = store.groups_of(conn, g.caller.organization_ids(), MAX_GROUPS)
        health = hook_stats.recent(conn, [r.id for r in rows], now - datetime.timedelta(hours=24))
        disabled = [h.id for hs in hooks.values() for h in hs if h.disabled_at is not None]
        waiting = store.open_counts(conn, disabled)
    return render_template("groups.html", groups=rows, hooks=hooks, health=health, waiting=waiting,
                           organizations=_organizations(), truncated=len(rows) == MAX_GROUPS,
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
    with services().engine.begin() as conn:
        group, _ = tenancy.group(conn, g.caller, group_id)
        rows = store.timeline(conn, group_id, start)
    buckets = charts.hourly(rows, start, 24 * days)
    totals = {}
    for _, status, n in rows:
        totals[status] = totals.get(status, 0) + n
    chart = Markup(charts.svg(buckets, f"{group.name}: deliveries per hour, last {days} days"))
    return render_template("timeline.html", group=group, chart=chart, days=days, totals=totals,
                           series=charts.SERIES)


# --- deliveries --------------------------------------------------------------------------

def _groups_by_id(conn):
    rows, _ = store.groups_of(conn, g.caller.organization_ids(), MAX_GROUPS)
    return {row.id: row for row in rows}


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
            body, resource = _init_body(request.form)
            items, rows = init_api.start(g.caller, resource, body)
        except HTTPException as exc:
            if exc.code not in (400, 404):
                raise
            data = getattr(exc, "data", None) or {}
            error = listing.flat(data["errors"]) if data.get("errors") else (data.get("message") or exc.description)
            status = exc.code
        else:
            return _redirect("dashboard.initialization", items=items, queued=len(rows))
    with services().engine.begin() as conn:
        progress = _progress(store.init_progress(conn, g.caller.organization_ids()))
        group_names = _groups_by_id(conn)
    return render_template("initialization.html", error=error, form=form, progress=progress,
                           resources=sorted(RESOURCES), types=sorted(TYPES), groups=group_names,
                           organizations=_organizations(), writable=g.caller.organization_ids(write=True),
                           started=request.args.get("queued"), items=request.args.get("items")), status


def _init_body(form):
    """The form as the API's InitSchema loads a body (same fields, same validation)."""
    raw = {k: v.strip() for k, v in form.items() if v.strip() and k in init_api.InitSchema().fields}
    raw.pop("webhook_type", None)
    types = [t for t in form.getlist("webhook_type") if t.strip()]
    if types:
        raw["webhook_type"] = types
    try:
        body = init_api.InitSchema().load(raw)
    except ValidationError as exc:
        smorest_abort(400, errors=exc.messages)
    return body, form.get("resource", "")


def _progress(rows):
    by_org = {}
    for row in rows:
        entry = by_org.setdefault(row.organization_id, {"total": 0, "done": 0, "open": 0, "dead": 0,
                                                        "last_due_at": None})
        entry["total"] += row.n
        if row.status == Status.DEAD:
            entry["dead"] += row.n
        elif row.status in lifecycle.FINAL:
            entry["done"] += row.n
        else:
            entry["open"] += row.n
            if row.last_due_at and (entry["last_due_at"] is None or row.last_due_at > entry["last_due_at"]):
                entry["last_due_at"] = row.last_due_at
    return by_org
