"""doo's error envelope for every error the API answers, and the pieces that guarantee it."""

import json
import logging
import re

from flask import jsonify
from flask_smorest import Api
from flask_smorest import Blueprint
from marshmallow import Schema
from marshmallow import fields
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import InternalServerError

from services.errors import Refused
from services.errors import said

log = logging.getLogger(__name__)

LONE_SURROGATE = re.compile("[\ud800-\udfff]")

USER_MESSAGES = {
    400: "The request is not valid.",
    401: "You are not authenticated.",
    403: "You are not allowed to do this.",
    404: "Not found.",
    405: "This method is not allowed here.",
    409: "This cannot be done in the object's current state.",
    413: "The request is too large.",
    415: "The request body must be JSON.",
    429: "Too many requests.",
    500: "Something went wrong on our side.",
    503: "The service is not available right now.",
}


class ErrorSchema(Schema):
    response_status = fields.Integer(required=True)
    developer_message = fields.String(required=True)
    user_message = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "Field-level messages, keyed by field (nested)."})


def envelope(status, developer_message, errors=None, user_message=None):
    body = {
        "response_status": status,
        "developer_message": developer_message,
        "user_message": user_message or USER_MESSAGES.get(status, "The request failed."),
        "errors": errors or {},
    }
    return jsonify(body), status


#: Deeper JSON is refused: no configuration or entity needs it, and deeper structures make
#: the parser and the code after it (deepcopy, marshmallow) hit Python's recursion limit.
MAX_JSON_DEPTH = 64


class Parser(FlaskParser):
    # doo answers validation errors with 400, not webargs' 422
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        body = req.get_data(cache=True)
        try:
            data = super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except RecursionError:
            raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", _doc(body), 0) from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise json.JSONDecodeError(str(exc), _doc(body), 0) from None
        problem = _unreadable(data)
        if problem:
            raise json.JSONDecodeError(problem, _doc(body), 0)
        return data

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        from flask_smorest import abort
        abort(400, message=f"The body is not valid JSON: {error}", errors={"json": ["Invalid JSON body."]})


def _doc(body):
    # webargs reads an empty document as "no body": keep it non-empty so the error is reported
    return body.decode("utf-8", "replace") or " "


def _unreadable(data):
    """Why parsed JSON cannot be used, or None: too deep, or a string that is not Unicode text.

    A lone surrogate (\\ud800) is valid JSON syntax but no character: it cannot be encoded
    as UTF-8, so neither the database nor a receiver could take it.
    """
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((key, depth) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and LONE_SURROGATE.search(value):
            return "a string holds a lone UTF-16 surrogate, which is not a character"
    return None


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = Parser()


class DooApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages") or {}
        # webargs nests body errors under the location ("json"); doo's clients expect fields
        if isinstance(errors, dict) and set(errors) == {"json"} and isinstance(errors["json"], dict):
            errors = errors["json"]
        if isinstance(errors, dict) and set(errors) == {"query"} and isinstance(errors["query"], dict):
            errors = errors["query"]
        message = data.get("message") or error.description or error.name
        if errors and not data.get("message"):
            message = "Validation failed: " + "; ".join(said(errors))
        response, status = envelope(error.code or 500, message, errors)
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        if error.code == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, status


def refused(exc):
    """A use case's refusal (services.errors) in doo's envelope, like an abort of the same status."""
    message = exc.message
    if exc.errors and not message:
        message = "Validation failed: " + "; ".join(said(exc.errors))
    response, status = envelope(exc.status, message or USER_MESSAGES.get(exc.status, "The request failed."),
                                exc.errors)
    if exc.status == 401:  # RFC 9110 §15.5.2: every 401 says how to authenticate
        response.headers["WWW-Authenticate"] = 'Bearer realm="doo-webhooks"'
    return response, status


def register(app, api):
    api_handler = api.handle_http_exception
    app.register_error_handler(HTTPException, api_handler)
    app.register_error_handler(Refused, refused)

    @app.errorhandler(Exception)
    def unexpected(exc):
        # The one place a bug surfaces: logged with its traceback, answered with the envelope.
        log.exception("unhandled error")
        return api_handler(InternalServerError())
