"""Why a use case refused: one exception per answer, so every face says it the same way.

The API answers ``status`` with doo's error envelope (``message``, field ``errors``), the
dashboard shows its error page, the command line prints the message and exits 1."""


class Refused(Exception):
    status = 400

    def __init__(self, message, errors=None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class Invalid(Refused):
    """The input is wrong; ``errors`` names the fields, nested like marshmallow's."""
    status = 400

    def __init__(self, errors, message=None):
        super().__init__(message, errors)


class Unauthorized(Refused):
    status = 401


class Forbidden(Refused):
    status = 403


class NotFound(Refused):
    status = 404


class Conflict(Refused):
    """Not in the object's current state (a delivery still in flight, a live hook enabled)."""
    status = 409


class Unavailable(Refused):
    """A part the use case needs (the broker) is away; sending again later will work."""
    status = 503
