"""The sales pages' filters: owner, pipeline, period (dates in the user's time zone),
paid status. Bad input is kept as typed and explained next to its field."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from app.web.params import parse_int, parse_pd_id

PRESETS = {
    "month": "This month",
    "quarter": "This quarter",
    "year": "This year",
    "all": "All time",
    "custom": "From and to dates",
}
DEFAULT_PRESET = "year"
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2100, 12, 31)


@dataclass
class SalesFilters:
    preset: str = DEFAULT_PRESET
    from_raw: str = ""
    to_raw: str = ""
    owner: int | None = None
    owner_raw: str = ""
    pipeline: int | None = None
    pipeline_raw: str = ""
    status: str = ""
    page: int = 1
    # The period actually applied: local dates (inclusive) and UTC bounds (end exclusive).
    # None for "all time".
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    today: dt.date | None = None
    errors: dict = field(default_factory=dict)

    @classmethod
    def from_args(
        cls,
        args,
        zone: ZoneInfo,
        *,
        now: dt.datetime | None = None,
        owners: set[int] | None = None,
        pipelines: set[int] | None = None,
        statuses=(),
    ) -> SalesFilters:
        now = now or dt.datetime.now(dt.UTC)
        f = cls(errors={})
        f.today = now.astimezone(zone).date()
        f.owner_raw = (args.get("owner") or "").strip()[:20]
        f.pipeline_raw = (args.get("pipeline") or "").strip()[:20]
        f.owner = _choice(f, "owner", f.owner_raw, owners)
        f.pipeline = _choice(f, "pipeline", f.pipeline_raw, pipelines)
        status = (args.get("status") or "").strip()
        if status and status not in statuses:
            f.errors["status"] = "Choose a paid status from the list."
        else:
            f.status = status
        f.page = parse_int(args.get("page"), minimum=1, maximum=99_999) or 1

        f.from_raw = (args.get("from") or "").strip()[:20]
        f.to_raw = (args.get("to") or "").strip()[:20]
        preset = (args.get("period") or "").strip()
        if preset and preset not in PRESETS:
            f.errors["period"] = "Choose a period from the list."
            preset = ""
        if f.from_raw or f.to_raw or preset == "custom":
            f.preset = "custom"
            start = _date(f, "from", f.from_raw, required=True)
            end = _date(f, "to", f.to_raw, required=False) or f.today
            if start and end and end < start:
                f.errors["to"] = "The end date is before the start date."
            if start and end and not ({"from", "to"} & f.errors.keys()):
                f.start_date, f.end_date = start, end
        else:
            f.preset = preset or DEFAULT_PRESET
        if f.start_date is None and f.preset != "all":
            # A preset, or the default while the typed dates are being fixed.
            f.start_date, f.end_date = preset_range(
                f.preset if f.preset not in ("custom", "all") else DEFAULT_PRESET, f.today
            )
        if f.start_date is not None:
            f.start = _utc(f.start_date, zone)
            f.end = _utc(f.end_date + dt.timedelta(days=1), zone)
        return f

    @property
    def fallback(self) -> bool:
        """The typed dates were refused: the page shows the default period meanwhile."""
        return self.preset == "custom" and bool({"from", "to"} & self.errors.keys())

    @property
    def days(self) -> int | None:
        """Days of the period that have begun (for DSO); None for all time or the future."""
        if self.start_date is None or self.today is None:
            return None
        last = min(self.end_date, self.today)
        n = (last - self.start_date).days + 1
        return n if n > 0 else None

    def args(self, **override) -> dict:
        out = {
            "period": self.preset,
            "from": self.from_raw if self.preset == "custom" else "",
            "to": self.to_raw if self.preset == "custom" else "",
            "owner": self.owner_raw,
            "pipeline": self.pipeline_raw,
            "status": self.status,
        }
        out.update(override)
        return {k: v for k, v in out.items() if v not in ("", None, 1)}


def preset_range(preset: str, today: dt.date) -> tuple[dt.date, dt.date]:
    if preset == "month":
        start = today.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    elif preset == "quarter":
        first_month = 3 * ((today.month - 1) // 3) + 1
        start = today.replace(month=first_month, day=1)
        end = (start + dt.timedelta(days=95)).replace(day=1) - dt.timedelta(days=1)
    else:
        start, end = today.replace(month=1, day=1), today.replace(month=12, day=31)
    return start, end


def _choice(f: SalesFilters, name: str, raw: str, known: set[int] | None) -> int | None:
    if not raw:
        return None
    ident = parse_pd_id(raw)
    if ident is None or (known is not None and ident not in known):
        f.errors[name] = "Choose one from the list."
        return None
    return ident


def _date(f: SalesFilters, name: str, raw: str, *, required: bool) -> dt.date | None:
    if not raw:
        if required:
            f.errors[name] = "Enter the first day of the period (YYYY-MM-DD)."
        return None
    try:
        value = dt.date.fromisoformat(raw)
    except ValueError:
        f.errors[name] = "Enter a date as YYYY-MM-DD, for example 2026-01-31."
        return None
    if not EARLIEST <= value <= LATEST:
        f.errors[name] = "Enter a date between 2000 and 2100."
        return None
    return value


def _utc(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)
