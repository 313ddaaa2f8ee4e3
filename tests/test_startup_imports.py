"""Django imports every app's models, admin and checks modules when it starts, for every command
(``migrate_tenants``, ``tenant_migration_status``, a web worker): what those modules import is
paid on each start. The importer's libraries wait until an import or an upload needs them."""

from __future__ import annotations

from tests.conftest import python_reporting_json

IMPORTER_MODULES = [
    "bulk_import.readers",
    "bulk_import.forms",
    "bulk_import.error_report",
    "bulk_import.importer",
    "charset_normalizer",
    "openpyxl",
    "python_calamine",
]


def modules_loaded_by(code: str) -> list[str]:
    """Run ``code`` in a new interpreter after ``django.setup()`` with the test settings; return
    which of ``IMPORTER_MODULES`` (and phonenumbers) are then imported."""
    script = (
        "import django, json, sys\n"
        "django.setup()\n"
        f"{code}\n"
        f"print(json.dumps([m for m in {[*IMPORTER_MODULES, 'phonenumbers']!r} "
        "if m in sys.modules]))\n"
    )
    return python_reporting_json(script)


def test_starting_django_imports_none_of_the_importers_libraries() -> None:
    assert modules_loaded_by("") == []


def test_system_checks_import_phonenumbers_only_to_check_the_phone_region() -> None:
    loaded = modules_loaded_by("from django.core import checks; checks.run_checks()")
    assert loaded == ["phonenumbers"]


def test_the_upload_form_still_loads_what_it_needs() -> None:
    loaded = modules_loaded_by("from bulk_import.forms import BulkImportUploadForm")
    assert "bulk_import.readers" in loaded and "phonenumbers" in loaded
