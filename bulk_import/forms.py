"""The admin's upload form: a contact file and the options of its import."""

from __future__ import annotations

import codecs
import json
from typing import Any

import phonenumbers
from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _

from bulk_import.mapping import CONTACT_FIELDS, PSEUDO_FIELDS, contact_field_names, mapping_targets
from bulk_import.models import BulkImport
from bulk_import.readers import ImportFileError, open_reader

MODE_CHOICES = [
    ("create_only", _("Create only: a row whose contact already exists is skipped")),
    ("upsert", _("Upsert: a row whose contact already exists updates it")),
]
UPDATE_FIELDS_CHOICES = [
    ("", _("Default: fill the existing contact's empty fields")),
    ("empty", _("Fill the existing contact's empty fields")),
    ("all", _("Overwrite every field the row has a value for")),
]
UNMAPPED_CHOICES = [
    ("", _("Default: keep them in the contact's extra")),
    ("extra", _("Keep them in the contact's extra")),
    ("report", _("Only list them in the import's column mapping")),
]
DATE_ORDER_CHOICES = [
    ("", _("Default (BULK_IMPORT_DATE_ORDER)")),
    ("iso", _("ISO only (2024-03-01) and Excel dates")),
    ("dmy", _("Day/month/year")),
    ("mdy", _("Month/day/year")),
]


def _file_format_for(filename: str) -> str:
    """``importer.file_format_for``, imported on first use: the admin imports this module at
    every start-up, and the importer brings the validation, e-mail and phone libraries."""
    from bulk_import.importer import file_format_for

    return file_format_for(filename)


class BulkImportUploadForm(forms.Form):
    """Validates the upload; ``import_options()`` gives ``BulkImport.options``.

    The options are those of ``bulk_import.options`` (docs/bulk_import.md, "Options"): ``mode``,
    ``update_fields``, ``mapping`` (header to field name), ``unmapped``, ``phone_region``
    (ISO 3166-1 alpha-2, upper case), ``date_order``, ``sheet`` and ``encoding``; a key is left
    out when the option is not set, so the import uses its default.
    """

    file = forms.FileField(
        help_text=_("CSV, TSV or spreadsheet file; the first row is the header.")
    )
    mode = forms.ChoiceField(choices=MODE_CHOICES, initial="create_only")
    update_fields = forms.ChoiceField(
        choices=UPDATE_FIELDS_CHOICES,
        required=False,
        label=_("Upsert updates"),
        help_text=_("With upsert: which fields of an existing contact a row changes."),
    )
    mapping = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        label=_("Column mapping"),
        help_text=_(
            'JSON object from the file\'s header to a contact field, e.g. {"Courriel": "email"}; '
            "other headers are recognised by name. Fields: %(fields)s."
        )
        % {"fields": ", ".join((*CONTACT_FIELDS, *PSEUDO_FIELDS))},
    )
    unmapped = forms.ChoiceField(
        choices=UNMAPPED_CHOICES,
        required=False,
        label=_("Unmapped columns"),
    )
    phone_region = forms.CharField(
        required=False,
        max_length=2,
        label=_("Phone region"),
        help_text=_("Country code (e.g. FR) for phone numbers written without +country code."),
    )
    date_order = forms.ChoiceField(
        choices=DATE_ORDER_CHOICES,
        required=False,
        label=_("Date order"),
        help_text=_("How dates that are not ISO (2024-03-01) are read."),
    )
    sheet = forms.CharField(
        required=False,
        max_length=255,
        label=_("Sheet name"),
        help_text=_("Worksheet of a workbook to import; the first one when empty."),
    )
    encoding = forms.CharField(
        required=False,
        max_length=50,
        help_text=_("Text encoding of a CSV file (e.g. cp1252); detected when empty."),
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        try:
            _file_format_for(upload.name or "")
        except ImportFileError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return upload

    def clean_mapping(self) -> dict[str, str]:
        text = self.cleaned_data["mapping"].strip()
        if not text:
            return {}
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                _("Not valid JSON: %(error)s."), params={"error": exc}
            ) from exc
        if not isinstance(mapping, dict) or not all(
            isinstance(header, str) and isinstance(target, str)
            for header, target in mapping.items()
        ):
            raise forms.ValidationError(
                _('Write a JSON object of header to field name, e.g. {"Courriel": "email"}.')
            )
        targets = mapping_targets(contact_field_names())
        unknown = sorted({target for target in mapping.values() if target not in targets} - {""})
        if unknown:
            raise forms.ValidationError(
                _(
                    'Unknown field(s) %(unknown)s; the fields are %(fields)s, or "" to ignore a '
                    "column."
                ),
                params={"unknown": ", ".join(unknown), "fields": ", ".join(sorted(targets))},
            )
        return mapping

    def clean_phone_region(self) -> str:
        region = self.cleaned_data["phone_region"].strip().upper()
        if region and region not in phonenumbers.SUPPORTED_REGIONS:
            raise forms.ValidationError(
                _("%(region)s is not a region phonenumbers knows; use a code such as FR or US."),
                params={"region": region},
            )
        return region

    def clean_encoding(self) -> str:
        encoding = self.cleaned_data["encoding"].strip()
        if encoding:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise forms.ValidationError(
                    _("Unknown text encoding %(encoding)s."), params={"encoding": encoding}
                ) from None
        return encoding

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("update_fields") and data.get("mode") != "upsert":
            self.add_error("update_fields", _("This applies to the upsert mode only."))
        upload = data.get("file")
        if upload is None:
            return data
        is_csv = _file_format_for(upload.name or "") == BulkImport.Format.CSV
        if data.get("sheet") and is_csv:
            self.add_error("sheet", _("A sheet name applies to workbooks only, not to CSV files."))
        if data.get("encoding") and not is_csv:
            self.add_error("encoding", _("An encoding applies to CSV files only."))
        if not self.errors:
            self._check_headers(upload, data)
        return data

    def _check_headers(self, upload: UploadedFile, data: dict[str, Any]) -> None:
        """Read the file's header row as the import will, so that an unreadable file, a missing
        sheet or a mapping of absent columns is reported here rather than by a failed import."""
        try:
            reader = open_reader(
                upload,
                _file_format_for(upload.name or ""),
                encoding=data.get("encoding") or None,
                sheet=data.get("sheet") or None,
            )
        except ImportFileError as exc:
            self.add_error("sheet" if data.get("sheet") else "file", str(exc))
            return
        finally:
            upload.seek(0)
        try:
            headers = list(reader.headers)
        finally:
            reader.close()
        absent = [header for header in data.get("mapping", {}) if header not in headers]
        if absent:
            self.add_error(
                "mapping",
                _("The file has no column %(absent)s; its columns are %(headers)s.")
                % {
                    "absent": ", ".join(repr(header) for header in absent),
                    "headers": ", ".join(repr(header) for header in headers),
                },
            )

    def import_options(self) -> dict[str, Any]:
        data = self.cleaned_data
        options: dict[str, Any] = {"mode": data["mode"]}
        for key in (
            "update_fields",
            "mapping",
            "unmapped",
            "phone_region",
            "date_order",
            "sheet",
            "encoding",
        ):
            if data[key]:
                options[key] = data[key]
        return options
