"""What every resource shares: the current sandbox's state (proxies valid inside a request
to the sandbox app), the JSON body, paging, custom fields, change tracking and webhook
emission."""

from __future__ import annotations

from flask import current_app, request
from werkzeug.local import LocalProxy

from .. import jsonutil
from ..validation import (
    ApiError,
    b_date,
    b_int,
    b_int_list,
    b_num,
    b_str,
    make_cursor,
    q_cursor,
    q_enum,
    q_int,
    validation_failed,
)

sb = LocalProxy(lambda: current_app.extensions["pipedrive_sandbox"])
store = LocalProxy(lambda: current_app.extensions["pipedrive_sandbox"].store)
settings = LocalProxy(lambda: current_app.extensions["pipedrive_sandbox"].settings)


def body_json() -> dict:
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if request.path.startswith("/api/v2/"):
            raise ApiError(415, "Unsupported Media Type: send a JSON body",
                           "ERR_UNSUPPORTED_MEDIA_TYPE")
        return request.form.to_dict()
    raw = request.get_data()
    if not raw:
        return {}
    try:
        return jsonutil.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Invalid JSON in request body", "ERR_INVALID_JSON") from exc

# -- generic helpers -------------------------------------------------
def get_or_404(table: str, item_id: int, label: str, allow_deleted: bool = True) -> dict:
    row = store.t[table].get(item_id)
    if row is None or (not allow_deleted and row.get("is_deleted")):
        raise ApiError(404, f"{label} not found", "not_found")
    return row

def page(rows: list[dict], args: dict, default_sort: str = "id") -> tuple[list, dict]:
    sort_by = args.get("sort_by", default_sort)
    direction = args.get("sort_direction", "asc")
    limit = args.get("limit", 100)
    cursor = args.get("cursor")
    desc = direction == "desc"

    def key(r):
        v = r.get(sort_by)
        return ("" if v is None else v, r["id"])

    if cursor is not None:
        if cursor.get("s") != sort_by or cursor.get("d") != direction:
            raise validation_failed([("cursor", "Invalid cursor.")])
        last = (cursor.get("v") if cursor.get("v") is not None else "", cursor["i"])
        try:
            rows = [r for r in rows if (key(r) < last if desc else key(r) > last)]
        except TypeError as exc:
            raise validation_failed([("cursor", "Invalid cursor.")]) from exc
    rows.sort(key=key, reverse=desc)
    chunk = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        tail = chunk[-1]
        next_cursor = make_cursor({"s": sort_by, "d": direction,
                                   "v": tail.get(sort_by), "i": tail["id"]})
    return chunk, {"next_cursor": next_cursor}

def list_spec(sorts=("id", "update_time", "add_time"), **extra) -> dict:
    spec = {"cursor": q_cursor, "limit": q_int(1, 500),
            "sort_by": q_enum(*sorts), "sort_direction": q_enum("asc", "desc")}
    spec.update(extra)
    return spec

def custom_fields_param(entity: str, raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if len(keys) > 15:
        raise validation_failed([("custom_fields", "A maximum of 15 keys is allowed.")])
    return keys

def with_custom(entity: str, row: dict, only: list[str] | None = None) -> dict:
    out = dict(row)
    values = row.get("custom_fields") or {}
    codes = store.custom_field_codes(entity)
    if only is not None:
        codes = [c for c in codes if c in only]
    out["custom_fields"] = {c: values.get(c) for c in codes}
    return out

def typed_custom(entity: str, values: dict) -> dict:
    out = {}
    for code in store.custom_field_codes(entity):
        field = store.fields[entity][code]
        v = values.get(code)
        if v is None:
            out[code] = None
        elif field["field_type"] == "monetary":
            out[code] = {"type": "monetary", "value": v.get("value"),
                         "currency": v.get("currency")}
        elif field["field_type"] == "enum":
            out[code] = {"type": "enum", "id": v}
        elif field["field_type"] == "set":
            out[code] = {"type": "set", "values": [{"id": x} for x in v]}
        else:
            out[code] = {"type": field["field_type"], "value": v}
    return out

def hook_data(entity: str, row: dict) -> dict:
    data = dict(row)
    if "custom_fields" in data:
        data["custom_fields"] = typed_custom(entity, row.get("custom_fields") or {})
    return data

def validate_custom(entity: str, values) -> dict:
    if not isinstance(values, dict):
        raise ValueError("This value should be of type object.")
    out = {}
    for code, v in values.items():
        field = store.fields[entity].get(code)
        if field is None or not field["is_custom_field"]:
            raise ValueError(f"Parameter '{code}' is not allowed for this request")
        if v is None:
            out[code] = None
            continue
        ft = field["field_type"]
        if ft in ("varchar", "varchar_auto", "text", "phone", "address", "time"):
            out[code] = b_str()(v)
        elif ft == "double":
            out[code] = b_num(v)
        elif ft == "date":
            out[code] = b_date(v)
        elif ft == "monetary":
            if not isinstance(v, dict) or "value" not in v:
                raise ValueError(f"{code}: monetary value needs 'value' and 'currency'")
            out[code] = {"value": b_num(v["value"]),
                         "currency": b_str()(v.get("currency", "EUR"))}
        elif ft == "enum":
            ids = {o["id"] for o in field["options"] or []}
            if b_int(v) not in ids:
                raise ValueError(f"{code}: option {v} does not exist")
            out[code] = v
        elif ft == "set":
            ids = {o["id"] for o in field["options"] or []}
            if any(x not in ids for x in b_int_list(v)):
                raise ValueError(f"{code}: unknown option")
            out[code] = v
        else:
            out[code] = b_int(v)
    return out

def apply_changes(row: dict, changes: dict, now: str) -> dict | None:
    """Write changes; return previous values of changed fields, or None."""
    previous: dict = {}
    for key, value in changes.items():
        if key == "custom_fields":
            cf = row.setdefault("custom_fields", {})
            prev_cf = {}
            for code, v in value.items():
                if cf.get(code) != v:
                    prev_cf[code] = cf.get(code)
                    cf[code] = v
            if prev_cf:
                previous["custom_fields"] = prev_cf
        elif row.get(key) != value:
            previous[key] = row.get(key)
            row[key] = value
    if previous:
        previous["update_time"] = row["update_time"]
        row["update_time"] = now
        return previous
    return None

def emit(action, entity, row, previous, source="api"):
    data = hook_data(entity, row) if row is not None else None
    if previous is not None and "custom_fields" in previous:
        previous = dict(previous)
        prev_cf = previous["custom_fields"]
        typed = typed_custom(entity, prev_cf)
        previous["custom_fields"] = {k: typed[k] for k in prev_cf if k in typed}
    sb.webhooks.emit(action=action, entity=entity, entity_id=row["id"], data=data,
                     previous=previous, change_source=source)

def check_ref(table: str, value, name: str, problems: list) -> None:
    if value is not None and value not in store.t[table]:
        problems.append((name, f"{name.replace('_id', '').capitalize()} with id {value} "
                               "does not exist."))
