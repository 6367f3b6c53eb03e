"""Strict query/body validation with Pipedrive v2's error wording."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime
from decimal import Decimal

from . import jsonutil

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


class ApiError(Exception):
    def __init__(self, status: int, error: str, code: str | None = None,
                 headers: dict | None = None, error_info: str = ERROR_INFO) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.code = code
        self.headers = headers or {}
        self.error_info = error_info

    def body(self) -> dict:
        body: dict = {"success": False, "error": self.error}
        if self.status in (401, 429):
            body["errorCode"] = self.status
        if self.code:
            body["code"] = self.code
        body.update({"error_info": self.error_info, "data": None, "additional_data": None})
        return body


def validation_failed(problems: list[tuple[str, str]]) -> ApiError:
    text = "; ".join(f"{name}: {msg}" for name, msg in problems)
    return ApiError(400, f"Validation failed: {text}", "ERR_SCHEMA_VALIDATION_FAILED")


def not_allowed(name: str) -> tuple[str, str]:
    return name, f"Parameter '{name}' is not allowed for this request"


# -- query parameter converters (raw string -> value; ValueError = 400) ----
def q_int(lo: int | None = None, hi: int | None = None):
    def conv(raw: str) -> int:
        if not re.fullmatch(r"-?\d+", raw.strip()):
            raise ValueError("This value should be of type integer.")
        value = int(raw)
        if lo is not None and value < lo:
            raise ValueError(f"This value should be greater than or equal to {lo}.")
        if hi is not None and value > hi:
            raise ValueError(f"This value should be less than or equal to {hi}.")
        return value
    return conv


def q_csv_int(max_items: int = 100):
    def conv(raw: str) -> list[int]:
        parts = [p.strip() for p in raw.split(",")]
        if not raw.strip() or any(not re.fullmatch(r"\d+", p) for p in parts):
            raise ValueError("This value should be a comma separated list of integers.")
        if len(parts) > max_items:
            raise ValueError(f"This collection should contain {max_items} elements or less.")
        return [int(p) for p in parts]
    return conv


def q_enum(*values: str):
    def conv(raw: str) -> str:
        if raw not in values:
            raise ValueError(f"The value you selected is not a valid choice ({', '.join(values)}).")
        return raw
    return conv


def q_csv_enum(*values: str):
    def conv(raw: str) -> list[str]:
        parts = [p.strip() for p in raw.split(",")]
        for p in parts:
            if p not in values:
                raise ValueError(
                    f"One or more of the given values is invalid ({', '.join(values)})."
                )
        return parts
    return conv


def q_str(min_len: int = 0, max_len: int = 10_000):
    def conv(raw: str) -> str:
        if len(raw) < min_len:
            raise ValueError(
                f"This value is too short. It should have {min_len} characters or more."
            )
        if len(raw) > max_len:
            raise ValueError("This value is too long.")
        return raw
    return conv


def q_bool(raw: str) -> bool:
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise ValueError("This value should be of type boolean.")


def parse_rfc3339(raw: str) -> datetime:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", raw):
        raise ValueError("This value is not a valid RFC3339 datetime.")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as exc:
        raise ValueError("This value is not a valid RFC3339 datetime.") from exc


def q_rfc3339(raw: str) -> str:
    return parse_rfc3339(raw).strftime("%Y-%m-%dT%H:%M:%SZ")


def q_cursor(raw: str) -> dict:
    try:
        pad = "=" * (-len(raw) % 4)
        data = jsonutil.loads(base64.urlsafe_b64decode(raw + pad).decode())
        if not isinstance(data, dict) or "i" not in data:
            raise ValueError
        return data
    except Exception as exc:  # noqa: BLE001 - any garbage is an invalid cursor
        raise ValueError("Invalid cursor.") from exc


def make_cursor(data: dict) -> str:
    return base64.urlsafe_b64encode(jsonutil.dumps(data).encode()).decode().rstrip("=")


def parse_query(args, spec: dict, required: tuple[str, ...] = (), strict: bool = True) -> dict:
    problems: list[tuple[str, str]] = []
    out: dict = {}
    for name in args:
        if name == "api_token":
            continue
        if name not in spec:
            if strict:
                problems.append(not_allowed(name))
            continue
        values = args.getlist(name)
        try:
            out[name] = spec[name](values[-1])
        except ValueError as exc:
            problems.append((name, str(exc)))
    for name in required:
        if name not in out and not any(p[0] == name for p in problems):
            problems.append((name, "This value should not be blank."))
    if problems:
        raise validation_failed(problems)
    return out


# -- body converters (JSON value -> value; ValueError = 400) ---------------
def b_str(max_len: int = 100_000, allow_empty: bool = True):
    def conv(v):
        if not isinstance(v, str):
            raise ValueError("This value should be of type string.")
        if not allow_empty and not v.strip():
            raise ValueError("This value should not be blank.")
        if len(v) > max_len:
            raise ValueError("This value is too long.")
        return v
    return conv


def b_int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("This value should be of type integer.")
    return v


def b_probability(v):
    v = b_int(v)
    if not 0 <= v <= 100:
        raise ValueError("This value should be between 0 and 100.")
    return v


def b_days(v):
    v = b_int(v)
    if v < 1:
        raise ValueError("This value should be positive.")
    return v


def b_num(v):
    if isinstance(v, bool) or not isinstance(v, int | Decimal):
        raise ValueError("This value should be of type number.")
    return Decimal(v)


def b_bool(v):
    if not isinstance(v, bool):
        raise ValueError("This value should be of type boolean.")
    return v


def b_enum(*values):
    def conv(v):
        if v not in values:
            choices = ", ".join(map(str, values))
            raise ValueError(f"The value you selected is not a valid choice ({choices}).")
        return v
    return conv


def b_date(v):
    if not isinstance(v, str):
        raise ValueError("This value should be of type string.")
    try:
        date.fromisoformat(v)
    except ValueError as exc:
        raise ValueError("This value is not a valid date (YYYY-MM-DD).") from exc
    if not re.fullmatch(r"\d{4}-\d\d-\d\d", v):
        raise ValueError("This value is not a valid date (YYYY-MM-DD).")
    return v


def b_time(v):
    if not isinstance(v, str) or not re.fullmatch(r"\d\d:\d\d(:\d\d)?", v):
        raise ValueError("This value is not a valid time (HH:MM).")
    return v


def b_datetime(v):
    if not isinstance(v, str):
        raise ValueError("This value should be of type string.")
    return q_rfc3339(v)


def b_nullable(conv):
    def inner(v):
        return None if v is None else conv(v)
    return inner


def b_int_list(v):
    if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
        raise ValueError("This value should be an array of integers.")
    return v


def b_contact_list(v):
    """emails / phones: [{value, primary, label}]"""
    if not isinstance(v, list):
        raise ValueError("This value should be of type array.")
    out = []
    for item in v:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise ValueError("Each item needs a string 'value'.")
        extra = set(item) - {"value", "primary", "label"}
        if extra:
            raise ValueError(f"Parameter '{sorted(extra)[0]}' is not allowed for this request")
        primary = item.get("primary", False)
        if not isinstance(primary, bool):
            raise ValueError("'primary' should be of type boolean.")
        label = item.get("label", "work")
        if not isinstance(label, str):
            raise ValueError("'label' should be of type string.")
        out.append({"value": item["value"], "primary": primary, "label": label})
    if out and not any(i["primary"] for i in out):
        out[0]["primary"] = True
    return out


def b_any(v):
    return v


def parse_body(body: dict, spec: dict, required: tuple[str, ...] = ()) -> dict:
    if not isinstance(body, dict):
        raise validation_failed([("body", "This value should be of type object.")])
    problems: list[tuple[str, str]] = []
    out: dict = {}
    for name, value in body.items():
        if name not in spec:
            problems.append(not_allowed(name))
            continue
        try:
            out[name] = spec[name](value)
        except ValueError as exc:
            problems.append((name, str(exc)))
    for name in required:
        if name not in body:
            problems.append((name, "This value should not be blank."))
    if problems:
        raise validation_failed(problems)
    return out


# Vocabularies the resources validate against.
BILLING_FREQUENCIES = ("one-time", "weekly", "monthly", "quarterly", "semi-annually", "annually")
TAX_METHODS = ("exclusive", "inclusive", "none")
FIELD_TYPES = ("varchar", "varchar_auto", "text", "double", "monetary", "date", "daterange",
               "time", "timerange", "enum", "set", "user", "org", "people", "phone", "address")
