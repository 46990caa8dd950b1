"""The delivery dashboard at /dashboard/: server-rendered pages (Jinja, one stylesheet, no
script) for organizers and support staff, on the same data, tenancy and functions as the API.

See docs/dashboard.md for the pages and app/dashboard/views.py for how they are built.
"""


def register(app):
    from app.dashboard.views import blp
    app.register_blueprint(blp)
