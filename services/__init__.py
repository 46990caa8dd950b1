"""The service layer: every use case the faces offer, as a plain function that owns its
transaction, applies tenancy and masks secrets.

Flask views (app/api, app/dashboard) and click commands (doo_webhooks/cli*) are thin adapters
over these functions: they parse what came in, call one function here, and render what it
returns. A refusal is an exception of ``services.errors`` (NotFound, Forbidden, Conflict,
Invalid, ...) that each face turns into its own form: the API's error envelope, the
dashboard's error page, the command's message and exit status. The delivery pipeline
(intake, fan-out, the send loop, the scheduler) is the domain's own (workers/): Celery tasks
and standalone run it directly.

Every function takes a ``Context`` (services.context) first, and, where tenancy applies, the
``Caller`` (services.tenancy) it acts for: an organizer's memberships for the API and the
dashboard, ``OPERATOR`` (every organization) for the command line.
"""
