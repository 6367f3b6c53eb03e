"""JSON responses in the Pipedrive shape (``{"success": true, "data": ...}``)."""

from __future__ import annotations

from flask import Response

from . import jsonutil


def json_response(body, status: int = 200, headers: dict | None = None):
    resp = Response(jsonutil.dumps(body), status=status,
                    content_type="application/json; charset=utf-8")
    for k, v in (headers or {}).items():
        resp.headers[k] = str(v)
    return resp


def ok(data, additional_data=None, status: int = 200):
    body = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return json_response(body, status)

