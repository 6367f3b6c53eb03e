"""Field mapping changes, validated before they are saved, each one audited.

The admin chooses a field by entity and NAME; the name is resolved against the
field definitions read from Pipedrive (`PdField`) on every save, and the key
(Pipedrive's 40-character hash) is never shown, accepted or stored in a mapping.
Helpers flush, the view commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select

from app.audit.operations import record
from app.extensions import db
from app.intake.models import FieldMapping, PdField
from app.mappings.options import enum_option  # noqa: F401 - part of this module's interface
from app.mappings.purposes import (
    ENTITIES,
    KIND_WORDS,
    PURPOSES,
    TYPE_WORDS,
    Purpose,
)
from app.payments.states import PAYMENT_STATES
from app.pipedrive.client import PipedriveClient, PipedriveError

FIELD_PATHS = {"deal": "dealFields", "organization": "organizationFields",
               "person": "personFields"}
_HASH_RE = re.compile(r"^[0-9a-f]{40}$", re.IGNORECASE)
# Control characters (NUL, tabs, line breaks, C1), lone surrogates and the
# invisible direction marks and overrides: never part of a field name people read.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
CONTROL_MESSAGE = ("A field name cannot contain control characters (such as NUL, tabs or line "
                   "breaks) or invisible direction marks: type the name as Pipedrive shows it.")


def has_control_characters(name: str) -> bool:
    return bool(_CONTROL_RE.search(name))


class MappingError(ValueError):
    """Bad input; `errors` maps form field -> the message shown next to it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def type_words(field_type: str | None) -> str:
    return TYPE_WORDS.get(field_type or "", field_type or "unknown")


def _norm(name: str | None) -> str:
    return (name or "").strip().lower()


# -- what Pipedrive has -----------------------------------------------------------------


def fields_of(entity: str) -> list[PdField]:
    return list(
        db.session.execute(
            select(PdField).where(PdField.entity == entity).order_by(PdField.name, PdField.id)
        ).scalars()
    )


def choosable(purpose: Purpose, f: PdField) -> bool:
    """Custom fields only (the desk reads and writes custom fields), except the built-in
    address, which is where Pipedrive keeps an organization's address."""
    return f.is_custom or (purpose.kind == "address" and f.field_type == "address")


def suitable(purpose: Purpose, f: PdField) -> bool:
    return choosable(purpose, f) and f.field_type in purpose.allowed_types


def field_choices(purpose: Purpose) -> list[tuple[str, list[PdField]]]:
    """(entity, its fields a purpose could use), for the select."""
    return [(e, [f for f in fields_of(e) if choosable(purpose, f)]) for e in purpose.entities]


def find_field(entity: str, name: str) -> PdField | None:
    """The field called `name` (any case); MappingError if Pipedrive has two of them."""
    wanted = _norm(name)
    found = [f for f in fields_of(entity) if _norm(f.name) == wanted]
    if len(found) > 1:
        raise MappingError({"field": (
            f"Pipedrive has {len(found)} {entity} fields called “{found[0].name}”: rename "
            "one of them in Pipedrive, reload the fields, then choose again."
        )})
    return found[0] if found else None


# -- what the desk uses ------------------------------------------------------------------


def mapping_row(purpose_key: str) -> FieldMapping | None:
    return db.session.execute(
        select(FieldMapping).where(FieldMapping.purpose == purpose_key)
    ).scalar_one_or_none()


def targets(purpose: Purpose, row: FieldMapping | None) -> list[tuple[str, str]]:
    """Where the purpose reads or writes with this mapping row: the row's field, the
    defaults when there is no row, nothing when it is switched off."""
    if row is None:
        return list(purpose.defaults)
    if not (row.field_name or "").strip():
        return []
    return [(row.entity, row.field_name.strip())]


def conflict(purpose: Purpose, entity: str, name: str) -> Purpose | None:
    """Another purpose that already reads or writes this field."""
    rows = {r.purpose: r for r in db.session.execute(select(FieldMapping)).scalars()}
    for other in PURPOSES.values():
        if other.key == purpose.key:
            continue
        for e, n in targets(other, rows.get(other.key)):
            if e == entity and _norm(n) == _norm(name):
                return other
    return None


@dataclass
class Target:
    entity: str
    name: str
    field: PdField | None

    @property
    def label(self) -> str:
        return f"{ENTITIES[self.entity]} field “{self.field.name if self.field else self.name}”"


@dataclass
class MappingView:
    """One purpose as the page shows it."""

    purpose: Purpose
    mode: str  # "default", "mapped" or "off"
    targets: list[Target]
    problems: list[str] = field(default_factory=list)
    options_map: dict | None = None

    @property
    def key(self) -> str:
        return self.purpose.key

    @property
    def current(self) -> Target | None:
        return self.targets[0] if self.targets else None

    @property
    def missing(self) -> Target | None:
        """The first target Pipedrive does not have (offered to be created)."""
        return next((t for t in self.targets if t.field is None), None)

    @property
    def enum_field(self) -> PdField | None:
        t = self.current
        if self.purpose.kind == "status" and t and t.field and t.field.field_type == "enum":
            return t.field
        return None

    @property
    def selected(self) -> str:
        t = self.current
        if t is None:
            return ""
        return f"{t.entity}:{t.field.name if t.field else t.name}"

    def option_label(self, state: str) -> str | None:
        f = self.enum_field
        chosen = (self.options_map or {}).get(state)
        for o in (f.options or []) if f else []:
            if str(o.get("id")) == str(chosen):
                return o.get("label")
        return None


def view(purpose: Purpose) -> MappingView:
    row = mapping_row(purpose.key)
    mode = "default" if row is None else ("off" if not (row.field_name or "").strip()
                                          else "mapped")
    out = []
    problems = []
    for entity, name in targets(purpose, row):
        try:
            f = find_field(entity, name)
        except MappingError as exc:
            f = None
            problems.append(exc.errors["field"])
        out.append(Target(entity, name, f))
        if f is not None and not suitable(purpose, f):
            problems.append(
                f"{ENTITIES[entity]} field “{f.name}” is {type_words(f.field_type)}, which "
                f"cannot hold {KIND_WORDS[purpose.kind]}."
            )
    m = MappingView(purpose, mode, out, problems, row.options_map if row is not None else None)
    if m.enum_field is not None:
        missing = [s for s in PAYMENT_STATES if not m.option_label(s)]
        if missing:
            m.problems.append(
                "Choose the option for every payment state: "
                + ", ".join(PAYMENT_STATES[s] for s in missing) + "."
            )
    return m


def all_views() -> list[MappingView]:
    return [view(p) for p in PURPOSES.values()]


# -- changes ---------------------------------------------------------------------------


def parse_choice(purpose: Purpose, raw: str | None) -> tuple[str, str]:
    """'deal:Invoice number' -> ('deal', 'Invoice number'); without an entity, the
    purpose's first one."""
    text = (raw or "").strip()
    entity, sep, name = text.partition(":")
    if not (sep and entity in ENTITIES):
        entity, name = purpose.entities[0], text
    name = name.strip()
    if not name:
        raise MappingError({"field": "Choose a Pipedrive field, or switch this off."})
    if has_control_characters(name):
        raise MappingError({"field": CONTROL_MESSAGE})
    if entity not in purpose.entities:
        allowed = " or ".join(ENTITIES[e].lower() for e in purpose.entities)
        raise MappingError({"field": f"{purpose.label} can only be a {allowed} field."})
    return entity, name


def _fitting_names(purpose: Purpose, entity: str, limit: int = 20) -> str:
    """What to choose instead of a name Pipedrive does not have, as a sentence."""
    names = [f"“{f.name}”" for f in fields_of(entity) if suitable(purpose, f)]
    if not names:
        return f"It has no {entity} field that can hold {KIND_WORDS[purpose.kind]} yet: create it."
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (f"Its {entity} fields that can hold {KIND_WORDS[purpose.kind]}: "
            f"{', '.join(names[:limit])}{more}. Choose one of them, or create it.")


def _check_field(purpose: Purpose, entity: str, name: str, client_factory=None) -> PdField:
    f = find_field(entity, name)
    if f is None and _HASH_RE.match(name):
        raise MappingError({"field": (
            "Choose the field by its name: the desk does not take Pipedrive's field keys."
        )})
    if f is None and client_factory is not None:
        # Not known here (before the first import, or added in Pipedrive since): read
        # this entity's fields from Pipedrive once, then look again.
        try:
            counts = reload_entity(client_factory(), entity)
        except PipedriveError as exc:
            raise MappingError({"field": (
                f"No {entity} field called “{name[:255]}” is known to the desk yet, and the "
                f"fields could not be read from Pipedrive: {str(exc).rstrip('.')}. "
                "Check Admin → Connections, then save again."
            )}) from None
        record("pipedrive_fields.reload", "pipedrive_fields", entity, None, counts)
        f = find_field(entity, name)
    if f is None:
        raise MappingError({"field": (
            f"Pipedrive has no {entity} field called “{name[:255]}”. "
            + _fitting_names(purpose, entity)
        )})
    if not choosable(purpose, f):
        raise MappingError({"field": (
            f"“{f.name}” is one of Pipedrive's built-in fields; the desk only uses custom fields."
        )})
    if f.field_type not in purpose.allowed_types:
        allowed = sorted({type_words(t) for t in purpose.allowed_types})
        raise MappingError({"field": (
            f"“{f.name}” is a {type_words(f.field_type)} field, which cannot hold "
            f"{KIND_WORDS[purpose.kind]}: choose a field of type {' or '.join(allowed)}."
        )})
    other = conflict(purpose, entity, f.name)
    if other is not None:
        raise MappingError({"field": (
            f"{ENTITIES[entity]} field “{f.name}” is already used for {other.label}: two "
            "values cannot share one field. Choose another field, or change that mapping first."
        )})
    return f


def enum_choice(purpose: Purpose, choice: str | None) -> PdField | None:
    """The enum field a status purpose is being mapped to (for the option sub-form)."""
    if purpose.kind != "status" or not choice:
        return None
    try:
        entity, name = parse_choice(purpose, choice)
        f = find_field(entity, name)
    except MappingError:
        return None
    return f if f is not None and f.field_type == "enum" else None


def guess_options(f: PdField) -> dict[str, int]:
    """Payment states whose words match an option's label."""
    by_label = {_norm(o.get("label")): o.get("id") for o in (f.options or [])}
    out = {}
    for state, words in PAYMENT_STATES.items():
        found = by_label.get(_norm(words), by_label.get(_norm(state.replace("_", " "))))
        if found is not None:
            out[state] = found
    return out


def parse_options_map(f: PdField, raw: dict[str, str] | None) -> dict[str, int]:
    """{state: option id} for an enum field: every payment state needs an option."""
    ids = {str(o.get("id")): o.get("id") for o in (f.options or [])}
    if raw is None:
        chosen = guess_options(f)
    else:
        chosen = {}
        errors = {}
        for state in PAYMENT_STATES:
            value = (raw.get(state) or "").strip()
            if value and value not in ids:
                errors[f"state-{state}"] = f"That is not an option of “{f.name}”."
            elif value:
                chosen[state] = ids[value]
        if errors:
            raise MappingError(errors)
    missing = [s for s in PAYMENT_STATES if s not in chosen]
    if missing:
        errors = {f"state-{s}": f"Choose the option of “{f.name}” for this state."
                  for s in missing}
        errors["field"] = (
            f"“{f.name}” is a single-option field: choose which of its options each payment "
            "state is written as."
        )
        raise MappingError(errors)
    return chosen


def _state(row: FieldMapping | None) -> dict | None:
    if row is None:
        return None
    return {"entity": row.entity, "field": row.field_name, "options_map": row.options_map}


def _store(purpose: Purpose, entity: str, name: str, options_map: dict | None,
           action: str) -> FieldMapping:
    row = mapping_row(purpose.key)
    before = _state(row)
    if row is None:
        row = FieldMapping(purpose=purpose.key)
        db.session.add(row)
    row.entity, row.field_name, row.options_map = entity, name, options_map
    db.session.flush()
    after = _state(row)
    if before != after:
        record(action, "field_mapping", purpose.key, before, after)
    return row


def save_mapping(purpose: Purpose, choice: str | None,
                 options: dict[str, str] | None = None, client_factory=None) -> FieldMapping:
    """Map `purpose` to the field chosen by name. Raises MappingError.

    With `client_factory` (a function returning a Pipedrive client), a name not known
    here makes the desk read that entity's fields from Pipedrive first."""
    entity, name = parse_choice(purpose, choice)
    f = _check_field(purpose, entity, name, client_factory)
    options_map = None
    if purpose.kind == "status" and f.field_type == "enum":
        options_map = parse_options_map(f, options)
    return _store(purpose, entity, f.name, options_map, "field_mapping.set")


def switch_off(purpose: Purpose) -> FieldMapping:
    """Nothing is read or written for this purpose (an empty field name)."""
    entity = purpose.defaults[0][0] if purpose.defaults else purpose.entities[0]
    return _store(purpose, entity, "", None, "field_mapping.off")


def use_defaults(purpose: Purpose) -> bool:
    """Back to the built-in fields (refused if another purpose took one of them)."""
    row = mapping_row(purpose.key)
    if row is None:
        return False
    for entity, name in purpose.defaults:
        other = conflict(purpose, entity, name)
        if other is not None:
            raise MappingError({"field": (
                f"The default, {ENTITIES[entity].lower()} field “{name}”, is now used for "
                f"{other.label}: change that mapping first."
            )})
    before = _state(row)
    db.session.delete(row)
    db.session.flush()
    record("field_mapping.default", "field_mapping", purpose.key, before, None)
    return True


# -- Pipedrive's field definitions ----------------------------------------------------------


def _upsert(entity: str, data: dict, known: dict[str, PdField]) -> PdField | None:
    code = data.get("field_code") or data.get("key")
    if not code:
        return None
    row = known.get(code) or PdField(entity=entity, field_code=code)
    row.name = data.get("field_name") or data.get("name") or code
    row.field_type = data.get("field_type") or "varchar"
    row.is_custom = bool(data.get("is_custom_field", True))
    row.options = data.get("options")
    db.session.add(row)
    known[code] = row
    return row


def reload_entity(client: PipedriveClient, entity: str) -> dict[str, int]:
    """Read one entity's field definitions; forget fields Pipedrive no longer has."""
    known = {f.field_code: f for f in fields_of(entity)}
    before = set(known)
    seen = set()
    for item in client.iter_v2(f"/api/v2/{FIELD_PATHS[entity]}"):
        row = _upsert(entity, item, known)
        if row is not None:
            seen.add(row.field_code)
    removed = 0
    for code in before - seen:
        db.session.delete(known[code])
        removed += 1
    db.session.flush()
    return {"fields": len(seen), "added": len(seen - before), "removed": removed}


def load_if_none_known(client_factory) -> dict[str, int] | None:
    """First visit: read the field definitions from Pipedrive when none are stored yet.
    Returns the counts, or None when some were known. Raises PipedriveError."""
    if db.session.execute(select(PdField.id).limit(1)).first() is not None:
        return None
    return reload_fields(client_factory())


def reload_fields(client: PipedriveClient) -> dict[str, int]:
    """All three field lists, read completely before anything is forgotten."""
    totals = {"fields": 0, "added": 0, "removed": 0}
    for entity in FIELD_PATHS:
        for k, v in reload_entity(client, entity).items():
            totals[k] += v
    record("pipedrive_fields.reload", "pipedrive_fields", "deal,person,organization", None,
           totals)
    return totals


def create_field(client: PipedriveClient, purpose: Purpose, entity: str | None,
                 name: str | None) -> tuple[PdField, bool]:
    """Create the custom field in Pipedrive (unless it is there already) and map the
    purpose to it. Returns the field and whether it was created. Raises MappingError
    (nothing created) or PipedriveError."""
    name = (name or "").strip()
    entity = entity or purpose.entities[0]
    if entity not in purpose.entities:
        raise MappingError({"new_name": f"{purpose.label} cannot live on a {entity}."})
    if not name:
        raise MappingError({"new_name": "Enter the name of the new Pipedrive field."})
    if has_control_characters(name):
        raise MappingError({"new_name": CONTROL_MESSAGE})
    if len(name) > 255:
        raise MappingError({"new_name": "At most 255 characters."})
    if _HASH_RE.match(name):
        raise MappingError({"new_name": "Give the field a name people can read."})
    other = conflict(purpose, entity, name)
    if other is not None:
        raise MappingError({"new_name": (
            f"“{name}” is already used for {other.label}: two values cannot share one field."
        )})
    # Read again first: the field may exist already (made in Pipedrive, or by an
    # earlier attempt whose answer was lost): Pipedrive has no idempotency keys.
    reload_entity(client, entity)
    created = False
    try:
        f = find_field(entity, name)
    except MappingError as exc:
        raise MappingError({"new_name": exc.errors["field"]}) from None
    if f is None:
        body = client.request("POST", f"/api/v2/{FIELD_PATHS[entity]}",
                              json={"field_name": name, "field_type": purpose.create_type})
        data = body.get("data") or {}
        f = _upsert(entity, data, {})
        if f is None:
            raise PipedriveError(f"Pipedrive did not return the new field “{name}”.")
        db.session.flush()
        created = True
        record("pipedrive_field.create", "pipedrive_field", f"{entity}:{f.name}", None,
               {"entity": entity, "name": f.name, "field_type": f.field_type,
                "for": purpose.key})
    try:
        save_mapping(purpose, f"{entity}:{f.name}")
    except MappingError as exc:
        if created:
            raise
        raise MappingError({"new_name": exc.errors.get("field", str(exc))}) from None
    return f, created
