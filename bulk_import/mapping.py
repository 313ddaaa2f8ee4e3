"""Recognition of a file's headers: which columns feed which contact field.

A header is normalised (lower-cased, everything but letters and digits removed, so ``First Name``,
``first_name`` and ``FIRST-NAME`` all become ``firstname``) and looked up in ``FIELD_ALIASES``.
Several columns may feed one field (``Email 1`` and ``Email 2``, ``email_work`` and ``email_home``):
for each row the first non-empty one, in the file's column order, gives the value and the others
are kept in the contact's ``extra``. Columns that feed no field go to ``extra`` as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bulk_import.readers import ImportFileError

#: Pseudo-field: a whole name, split into first and last name when those are both empty.
FULL_NAME = "full_name"

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "givenname", "forename", "fname"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname"),
    FULL_NAME: ("fullname", "name", "displayname", "contactname", "contact"),
    "email": (
        "email", "emailaddress", "mail", "email1", "email2", "email3",
        "emailwork", "emailhome", "emailother", "workemail", "homeemail", "otheremail",
        "primaryemail", "secondaryemail", "businessemail", "personalemail",
    ),
    "phone": (
        "phone", "phonenumber", "telephone", "tel", "mobile", "mobilenumber", "mobilephone",
        "cell", "cellphone", "phone1", "phone2", "phone3", "phonework", "phonehome",
        "phoneother", "phonemobile", "workphone", "homephone", "businessphone",
    ),
    "job_title": ("jobtitle", "title", "position", "role", "occupation"),
    "city": ("city", "town", "homecity", "workcity"),
    "country": ("country", "homecountry", "workcountry"),
    "company": (
        "company", "companyname", "organization", "organisation", "org", "employer",
        "account", "accountname", "business",
    ),
}  # fmt: skip

_ALIAS_TO_FIELD = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")


def normalize_header(header: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", header.casefold())


@dataclass(frozen=True)
class ColumnMapping:
    """Which headers feed each field (in file order) and which headers feed none."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        """The contact fields the file provides; ``full_name`` counts as first and last name."""
        names = [name for name in FIELD_ALIASES if name in self.columns and name != FULL_NAME]
        if FULL_NAME in self.columns:
            names += [name for name in ("first_name", "last_name") if name not in names]
        return names


def map_headers(headers: list[str], model_fields: set[str]) -> ColumnMapping:
    """Map ``headers`` to the contact fields in ``model_fields``.

    Raises ImportFileError, listing the headers found, when no column gives a name or an e-mail.
    """
    columns: dict[str, list[str]] = {}
    unmapped: list[str] = []
    for header in headers:
        target = _ALIAS_TO_FIELD.get(normalize_header(header))
        usable = target == FULL_NAME and bool({"first_name", "last_name"} & model_fields)
        if target is not None and (usable or target in model_fields):
            columns.setdefault(target, []).append(header)
        else:
            unmapped.append(header)
    if not {"first_name", "last_name", FULL_NAME, "email"} & columns.keys():
        found = ", ".join(repr(header) for header in headers)
        raise ImportFileError(
            "No column holds a name or an e-mail address, so no contact can be imported. "
            f"Headers found: {found}. Name a column e.g. 'First Name', 'Last Name' or 'Email'."
        )
    return ColumnMapping(columns=columns, unmapped=unmapped)
