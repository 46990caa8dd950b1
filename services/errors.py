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


def said(errors, prefix=""):
    """Field errors nested like marshmallow's, as lines "field.sub: message" (the API's
    developer_message, the dashboard's page and the command line all say them so)."""
    for key, value in errors.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from said(value, path + ".")
        elif isinstance(value, list):
            texts = [v for v in value if isinstance(v, str)]
            nested = [v for v in value if isinstance(v, dict)]
            if texts:
                yield f"{path}: {' '.join(texts)}"
            for item in nested:
                yield from said(item, path + ".")
        else:
            yield f"{path}: {value}"
