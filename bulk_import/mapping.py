"""Recognition of a file's headers: which columns feed which contact field.

A header is normalised (lower-cased, everything but letters and digits removed, so ``First Name``,
``first_name`` and ``FIRST-NAME`` all become ``firstname``) and looked up in ``FIELD_ALIASES``;
when it is not there, it is looked up again without its digits, so the numbered columns of
Google Contacts (``E-mail 1 - Value`` -> ``emailvalue``), Outlook (``Business Phone 2``) and others
need no alias each. ``FALLBACK_ALIASES`` (``Title``, ``Account``, ``Name``...) feed a field only
when no column of ``FIELD_ALIASES`` does: Outlook's ``Title`` is a courtesy title such as ``Mr.``
next to its ``Job Title`` column, while Salesforce's ``Title`` is the job title.

Several columns may feed one field (``Email 1`` and ``Email 2``, ``email_work`` and ``email_home``):
for each row the first non-empty one, in the file's column order, gives the value and the others
are kept in the contact's ``extra``. Columns that feed no field go to ``extra`` as well (or are only
reported, with the import option ``unmapped="report"``).

An explicit mapping (``BulkImport.options["mapping"]``, ``{header: field}``, ``""`` to ignore a
column) overrides the recognition for the headers it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.apps import apps

from bulk_import import conf
from bulk_import.readers import ImportFileError

#: Pseudo-field: a whole name, split into first and last name when those are both empty.
FULL_NAME = "full_name"
#: Pseudo-fields: a birthday in three columns (Thunderbird's Birth Year, Birth Month, Birth Day).
BIRTH_YEAR, BIRTH_MONTH, BIRTH_DAY = "birth_year", "birth_month", "birth_day"
PSEUDO_FIELDS = (FULL_NAME, BIRTH_YEAR, BIRTH_MONTH, BIRTH_DAY)

#: The contact fields an import can fill, when the contact model has them.
CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "job_title",
    "company",
    "city",
    "country",
    "birthday",
)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "givenname", "forename", "fname"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname"),
    FULL_NAME: ("fullname", "displayname", "contactname"),
    "email": (
        "email", "emailaddress", "emailvalue", "emailwork", "emailhome", "emailother",
        "workemail", "homeemail", "otheremail", "primaryemail", "secondaryemail",
        "businessemail", "personalemail",
    ),
    "phone": (
        "phone", "phonenumber", "phonevalue", "telephone", "telephonenumber", "mobile",
        "mobilenumber", "mobilephone", "mobilephonenumber", "cell", "cellphone", "phonework",
        "phonehome", "phoneother", "phonemobile", "workphone", "homephone", "businessphone",
        "primaryphone", "otherphone",
    ),
    "job_title": ("jobtitle", "organizationtitle", "organisationtitle"),
    "company": (
        "company", "companyname", "organization", "organisation", "organizationname",
        "organisationname", "accountname", "employer",
    ),
    "city": (
        "city", "town", "homecity", "workcity", "businesscity", "othercity", "mailingcity",
        "addresscity",
    ),
    "country": (
        "country", "countryregion", "homecountry", "workcountry", "businesscountry",
        "othercountry", "mailingcountry", "addresscountry", "homecountryregion",
        "businesscountryregion", "othercountryregion",
    ),
    "birthday": ("birthday", "birthdate", "dateofbirth", "dob"),
    BIRTH_YEAR: ("birthyear",),
    BIRTH_MONTH: ("birthmonth",),
}  # fmt: skip

FALLBACK_ALIASES: dict[str, tuple[str, ...]] = {
    FULL_NAME: ("name", "contact"),
    "email": ("mail",),
    "phone": ("tel",),
    "job_title": ("title", "position", "role", "occupation", "profession"),
    "company": ("org", "account", "business", "associatedcompany"),
}

_ALIAS_TO_FIELD = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
_FALLBACK_TO_FIELD = {
    alias: name for name, aliases in FALLBACK_ALIASES.items() for alias in aliases
}
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
_DIGITS = re.compile(r"\d+")


def normalize_header(header: str) -> str:
    """Return ``header`` case-folded, with everything but letters and digits removed."""
    return _NOT_ALPHANUMERIC.sub("", header.casefold())


def recognize_header(header: str) -> tuple[str | None, bool]:
    """Return the field ``header`` feeds (or None) and whether only as a fallback alias."""
    normalized = normalize_header(header)
    for candidate in (normalized, _DIGITS.sub("", normalized)):
        if candidate in _ALIAS_TO_FIELD:
            return _ALIAS_TO_FIELD[candidate], False
        if candidate in _FALLBACK_TO_FIELD:
            return _FALLBACK_TO_FIELD[candidate], True
    return None, False


def contact_field_names() -> set[str]:
    """The fields of ``CONTACT_FIELDS`` that ``BULK_IMPORT_CONTACT_MODEL`` has."""
    model = apps.get_model(conf.contact_model_label())
    return {f.name for f in model._meta.concrete_fields if f.name in CONTACT_FIELDS}


def mapping_targets(model_fields: set[str]) -> set[str]:
    """Field names an explicit mapping may name for a model with ``model_fields``."""
    targets = set(model_fields)
    if {"first_name", "last_name"} & model_fields:
        targets.add(FULL_NAME)
    if "birthday" in model_fields:
        targets.update((BIRTH_YEAR, BIRTH_MONTH, BIRTH_DAY))
    return targets


def check_explicit_mapping(mapping: dict[str, str], model_fields: set[str]) -> None:
    """Raise ImportFileError when ``mapping`` ({header: field or ""}) names an unknown field."""
    targets = mapping_targets(model_fields)
    unknown = {header: target for header, target in mapping.items() if target not in targets}
    unknown = {header: target for header, target in unknown.items() if target != ""}
    if unknown:
        listed = ", ".join(f"{header!r} -> {target!r}" for header, target in unknown.items())
        raise ImportFileError(
            f"The column mapping names unknown field(s): {listed}. Fields: "
            f'{", ".join(sorted(targets))}, or "" to ignore a column.'
        )


@dataclass(frozen=True)
class ColumnMapping:
    """Which headers feed each field (in file order), which feed none, which are ignored."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        """The contact fields the file provides; ``full_name`` counts as first and last name,
        the three birth columns as ``birthday``."""
        names = [name for name in self.columns if name not in PSEUDO_FIELDS]
        if FULL_NAME in self.columns:
            names += [name for name in ("first_name", "last_name") if name not in names]
        if {BIRTH_YEAR, BIRTH_MONTH, BIRTH_DAY} & self.columns.keys() and "birthday" not in names:
            names.append("birthday")
        return sorted(names, key=_field_order)

    def as_pairs(self, headers: list[str]) -> list[list[str]]:
        """``[[header, field], ...]`` in file order; field ``""`` for a column that feeds none."""
        by_header = {h: name for name, feeding in self.columns.items() for h in feeding}
        return [[header, by_header.get(header, "")] for header in headers]


def _field_order(name: str) -> int:
    return CONTACT_FIELDS.index(name) if name in CONTACT_FIELDS else len(CONTACT_FIELDS)


def map_headers(
    headers: list[str], model_fields: set[str], explicit: dict[str, str] | None = None
) -> ColumnMapping:
    """Map ``headers`` to the contact fields in ``model_fields``.

    ``explicit`` ({header: field or ""}) overrides the recognition of the headers it names: a key
    matches a header exactly or, failing that, by its normalised form. Raises ImportFileError when
    ``explicit`` names an unknown field or a header the file does not have, and, listing the
    headers found, when no column gives a name or an e-mail.
    """
    explicit = explicit or {}
    check_explicit_mapping(explicit, model_fields)
    chosen = _explicit_targets(headers, explicit)
    targets = mapping_targets(model_fields)
    recognized: dict[str, tuple[str, bool]] = {}
    for header in headers:
        if header in chosen:
            continue
        target, fallback = recognize_header(header)
        if target is not None and target in targets:
            recognized[header] = (target, fallback)
    # Thunderbird writes a birthday as Birth Year, Birth Month and "Birth Day", the day of month.
    in_three_columns = any(
        target in (BIRTH_YEAR, BIRTH_MONTH) for target, _ in recognized.values()
    ) or any(target in (BIRTH_YEAR, BIRTH_MONTH) for target in chosen.values())
    if in_three_columns:
        for header, (target, fallback) in recognized.items():
            if target == "birthday" and normalize_header(header) == "birthday":
                recognized[header] = (BIRTH_DAY, fallback)
    strong = {target for target, fallback in recognized.values() if not fallback}
    strong.update(target for target in chosen.values() if target)
    columns: dict[str, list[str]] = {}
    unmapped: list[str] = []
    ignored: list[str] = []
    for header in headers:
        if header in chosen:
            target = chosen[header]
        elif header in recognized:
            target, fallback = recognized[header]
            if fallback and target in strong:
                target = ""
        else:
            target = ""
        if target:
            columns.setdefault(target, []).append(header)
        elif header in chosen:
            ignored.append(header)
        else:
            unmapped.append(header)
    if not {"first_name", "last_name", FULL_NAME, "email"} & columns.keys():
        found = ", ".join(repr(header) for header in headers)
        raise ImportFileError(
            "No column holds a name or an e-mail address, so no contact can be imported. "
            f"Headers found: {found}. Name a column e.g. 'First Name', 'Last Name' or 'Email', "
            "or give a column mapping."
        )
    return ColumnMapping(columns=columns, unmapped=unmapped, ignored=ignored)


def _explicit_targets(headers: list[str], explicit: dict[str, str]) -> dict[str, str]:
    """``{header of the file: field}`` for the keys of ``explicit``; raises for a missing one."""
    by_normalized: dict[str, str] = {}
    for header in headers:
        by_normalized.setdefault(normalize_header(header), header)
    chosen: dict[str, str] = {}
    missing: list[str] = []
    for key, target in explicit.items():
        header = key if key in headers else by_normalized.get(normalize_header(key))
        if header is None:
            missing.append(key)
        else:
            chosen[header] = target
    if missing:
        found = ", ".join(repr(header) for header in headers)
        raise ImportFileError(
            f"The column mapping names column(s) the file does not have: "
            f"{', '.join(repr(key) for key in missing)}. Headers found: {found}."
        )
    return chosen
