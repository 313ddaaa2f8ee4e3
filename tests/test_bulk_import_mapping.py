"""Column mapping: the header rows of common exports, written out here as their programs write
them (Microsoft's list of Outlook CSV columns, Google Contacts' two CSV formats, HubSpot's and
Salesforce's export columns, Mailchimp's audience export, Thunderbird's address book), and explicit
mappings per import."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context

from bulk_import.mapping import contact_field_names, map_headers, normalize_header
from bulk_import.models import BulkImport
from bulk_import.readers import ImportFileError
from tests.conftest import run_command
from tests.test_bulk_import_rows import write_csv

Tenant = Any
MakeTenant = Callable[..., Tenant]
ImportFile = Callable[..., BulkImport]

OUTLOOK = [
    "Title", "First Name", "Middle Name", "Last Name", "Suffix", "Company", "Department",
    "Job Title", "Business Street", "Business Street 2", "Business Street 3", "Business City",
    "Business State", "Business Postal Code", "Business Country/Region", "Home Street",
    "Home Street 2", "Home Street 3", "Home City", "Home State", "Home Postal Code",
    "Home Country/Region", "Other Street", "Other Street 2", "Other Street 3", "Other City",
    "Other State", "Other Postal Code", "Other Country/Region", "Assistant's Phone",
    "Business Fax", "Business Phone", "Business Phone 2", "Callback", "Car Phone",
    "Company Main Phone", "Home Fax", "Home Phone", "Home Phone 2", "ISDN", "Mobile Phone",
    "Other Fax", "Other Phone", "Pager", "Primary Phone", "Radio Phone", "TTY/TDD Phone", "Telex",
    "Account", "Anniversary", "Assistant's Name", "Billing Information", "Birthday",
    "Business Address PO Box", "Categories", "Children", "Directory Server", "E-mail Address",
    "E-mail Type", "E-mail Display Name", "E-mail 2 Address", "E-mail 2 Type",
    "E-mail 2 Display Name", "E-mail 3 Address", "E-mail 3 Type", "E-mail 3 Display Name",
    "Gender", "Government ID Number", "Hobby", "Home Address PO Box", "Initials",
    "Internet Free Busy", "Keywords", "Language", "Location", "Manager's Name", "Mileage", "Notes",
    "Office Location", "Organizational ID Number", "Other Address PO Box", "Priority", "Private",
    "Profession", "Referred By", "Sensitivity", "Spouse", "User 1", "User 2", "User 3", "User 4",
    "Web Page",
]  # fmt: skip
GOOGLE_CSV_LEGACY = [
    "Name", "Given Name", "Additional Name", "Family Name", "Yomi Name", "Given Name Yomi",
    "Additional Name Yomi", "Family Name Yomi", "Name Prefix", "Name Suffix", "Initials",
    "Nickname", "Short Name", "Maiden Name", "Birthday", "Gender", "Location",
    "Billing Information", "Directory Server", "Mileage", "Occupation", "Hobby", "Sensitivity",
    "Priority", "Subject", "Notes", "Language", "Photo", "Group Membership", "E-mail 1 - Type",
    "E-mail 1 - Value", "E-mail 2 - Type", "E-mail 2 - Value", "Phone 1 - Type",
    "Phone 1 - Value", "Phone 2 - Type", "Phone 2 - Value", "Address 1 - Type",
    "Address 1 - Formatted", "Address 1 - Street", "Address 1 - City", "Address 1 - PO Box",
    "Address 1 - Region", "Address 1 - Postal Code", "Address 1 - Country",
    "Address 1 - Extended Address", "Organization 1 - Type", "Organization 1 - Name",
    "Organization 1 - Yomi Name", "Organization 1 - Title", "Organization 1 - Department",
    "Organization 1 - Symbol", "Organization 1 - Location", "Organization 1 - Job Description",
    "Website 1 - Type", "Website 1 - Value",
]  # fmt: skip
GOOGLE_CSV = [
    "First Name", "Middle Name", "Last Name", "Phonetic First Name", "Phonetic Middle Name",
    "Phonetic Last Name", "Name Prefix", "Name Suffix", "Nickname", "File As",
    "Organization Name", "Organization Title", "Organization Department", "Birthday", "Notes",
    "Photo", "Labels", "E-mail 1 - Label", "E-mail 1 - Value", "E-mail 2 - Label",
    "E-mail 2 - Value", "Phone 1 - Label", "Phone 1 - Value", "Address 1 - Label",
    "Address 1 - Formatted", "Address 1 - Street", "Address 1 - City", "Address 1 - PO Box",
    "Address 1 - Region", "Address 1 - Postal Code", "Address 1 - Country",
    "Address 1 - Extended Address", "Website 1 - Label", "Website 1 - Value",
]  # fmt: skip
HUBSPOT = [
    "Record ID", "First Name", "Last Name", "Email", "Phone Number", "Mobile Phone Number",
    "Company Name", "Job Title", "Street Address", "City", "State/Region", "Postal Code",
    "Country/Region", "Contact owner", "Lifecycle Stage", "Lead Status", "Create Date",
    "Last Activity Date", "Associated Company", "Date of birth",
]  # fmt: skip
SALESFORCE_REPORT = [
    "Salutation", "First Name", "Last Name", "Title", "Account Name", "Mailing Street",
    "Mailing City", "Mailing State/Province", "Mailing Zip/Postal Code", "Mailing Country",
    "Phone", "Mobile", "Fax", "Email", "Birthdate", "Lead Source", "Contact Owner", "Department",
]  # fmt: skip
SALESFORCE_API = [
    "Id", "AccountId", "LastName", "FirstName", "Salutation", "Name", "MailingCity",
    "MailingCountry", "Phone", "Fax", "MobilePhone", "HomePhone", "OtherPhone", "Email", "Title",
    "Department", "Birthdate", "OwnerId",
]  # fmt: skip
MAILCHIMP = [
    "Email Address", "First Name", "Last Name", "Address", "Phone Number", "Birthday",
    "MEMBER_RATING", "OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE",
    "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC", "REGION", "LAST_CHANGED", "LEID", "EUID",
    "NOTES", "TAGS",
]  # fmt: skip
THUNDERBIRD = [
    "First Name", "Last Name", "Display Name", "Nickname", "Primary Email", "Secondary Email",
    "Screen Name", "Work Phone", "Home Phone", "Fax Number", "Pager Number", "Mobile Number",
    "Home Address", "Home Address 2", "Home City", "Home State", "Home ZipCode", "Home Country",
    "Work Address", "Work Address 2", "Work City", "Work State", "Work ZipCode", "Work Country",
    "Job Title", "Department", "Organization", "Web Page 1", "Web Page 2", "Birth Year",
    "Birth Month", "Birth Day", "Custom 1", "Custom 2", "Custom 3", "Custom 4", "Notes",
]  # fmt: skip
DATABLIST_CUSTOMERS = [
    "Index", "Customer Id", "First Name", "Last Name", "Company", "City", "Country", "Phone 1",
    "Phone 2", "Email", "Subscription Date", "Website",
]  # fmt: skip
DATABLIST_LEADS = [
    "Index", "Account Id", "Lead Owner", "First Name", "Last Name", "Company", "Phone 1",
    "Phone 2", "Email 1", "Email 2", "Website", "Source", "Deal Stage", "Notes",
]  # fmt: skip
DATABLIST_PEOPLE = [
    "Index", "User Id", "First Name", "Last Name", "Sex", "Email", "Phone", "Date of birth",
    "Job Title",
]  # fmt: skip
ATOMIC_CRM = [
    "id", "first_name", "last_name", "gender", "title", "background", "first_seen", "last_seen",
    "has_newsletter", "status", "tags", "company_id", "sales_id", "linkedin_url", "company_name",
    "nb_tasks", "company", "sales", "email_work", "email_home", "email_other", "phone_work",
    "phone_home", "phone_other",
]  # fmt: skip
LEGISLATORS = [
    "last_name", "first_name", "middle_name", "suffix", "nickname", "full_name", "birthday",
    "gender", "type", "state", "district", "senate_class", "party", "url", "address", "phone",
    "contact_form", "rss_url", "twitter", "twitter_id", "facebook", "youtube", "youtube_id",
    "mastodon", "bioguide_id", "thomas_id", "opensecrets_id", "lis_id", "fec_ids", "cspan_id",
    "govtrack_id", "votesmart_id", "ballotpedia_id", "washington_post_id", "icpsr_id",
    "wikipedia_id",
]  # fmt: skip

EXPECTED: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "outlook": (
        OUTLOOK,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "company": ["Company"],  # "Account" is only a fallback
            "job_title": ["Job Title"],  # "Title" (Mr., Ms.) and "Profession" are fallbacks
            "city": ["Business City", "Home City", "Other City"],
            "country": [
                "Business Country/Region",
                "Home Country/Region",
                "Other Country/Region",
            ],
            "phone": [
                "Business Phone",
                "Business Phone 2",
                "Home Phone",
                "Home Phone 2",
                "Mobile Phone",
                "Other Phone",
                "Primary Phone",
            ],
            "birthday": ["Birthday"],
            "email": ["E-mail Address", "E-mail 2 Address", "E-mail 3 Address"],
        },
    ),
    "google_legacy": (
        GOOGLE_CSV_LEGACY,
        {
            "full_name": ["Name"],
            "first_name": ["Given Name"],
            "last_name": ["Family Name"],
            "birthday": ["Birthday"],
            "email": ["E-mail 1 - Value", "E-mail 2 - Value"],
            "phone": ["Phone 1 - Value", "Phone 2 - Value"],
            "city": ["Address 1 - City"],
            "country": ["Address 1 - Country"],
            "company": ["Organization 1 - Name"],
            "job_title": ["Organization 1 - Title"],  # "Occupation" is only a fallback
        },
    ),
    "google": (
        GOOGLE_CSV,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "company": ["Organization Name"],
            "job_title": ["Organization Title"],
            "birthday": ["Birthday"],
            "email": ["E-mail 1 - Value", "E-mail 2 - Value"],
            "phone": ["Phone 1 - Value"],
            "city": ["Address 1 - City"],
            "country": ["Address 1 - Country"],
        },
    ),
    "hubspot": (
        HUBSPOT,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "email": ["Email"],
            "phone": ["Phone Number", "Mobile Phone Number"],
            "company": ["Company Name"],
            "job_title": ["Job Title"],
            "city": ["City"],
            "country": ["Country/Region"],
            "birthday": ["Date of birth"],
        },
    ),
    "salesforce_report": (
        SALESFORCE_REPORT,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "job_title": ["Title"],
            "company": ["Account Name"],
            "city": ["Mailing City"],
            "country": ["Mailing Country"],
            "phone": ["Phone", "Mobile"],
            "email": ["Email"],
            "birthday": ["Birthdate"],
        },
    ),
    "salesforce_api": (
        SALESFORCE_API,
        {
            "last_name": ["LastName"],
            "first_name": ["FirstName"],
            "full_name": ["Name"],
            "city": ["MailingCity"],
            "country": ["MailingCountry"],
            "phone": ["Phone", "MobilePhone", "HomePhone", "OtherPhone"],
            "email": ["Email"],
            "job_title": ["Title"],
            "birthday": ["Birthdate"],
        },
    ),
    "mailchimp": (
        MAILCHIMP,
        {
            "email": ["Email Address"],
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "phone": ["Phone Number"],
            "birthday": ["Birthday"],
        },
    ),
    "thunderbird": (
        THUNDERBIRD,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "full_name": ["Display Name"],
            "email": ["Primary Email", "Secondary Email"],
            "phone": ["Work Phone", "Home Phone", "Mobile Number"],
            "city": ["Home City", "Work City"],
            "country": ["Home Country", "Work Country"],
            "job_title": ["Job Title"],
            "company": ["Organization"],
            "birth_year": ["Birth Year"],
            "birth_month": ["Birth Month"],
            "birth_day": ["Birth Day"],  # the day of the month, next to Birth Year and Month
        },
    ),
    "datablist_customers": (
        DATABLIST_CUSTOMERS,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "company": ["Company"],
            "city": ["City"],
            "country": ["Country"],
            "phone": ["Phone 1", "Phone 2"],
            "email": ["Email"],
        },
    ),
    "datablist_leads": (
        DATABLIST_LEADS,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "company": ["Company"],
            "phone": ["Phone 1", "Phone 2"],
            "email": ["Email 1", "Email 2"],
        },
    ),
    "datablist_people": (
        DATABLIST_PEOPLE,
        {
            "first_name": ["First Name"],
            "last_name": ["Last Name"],
            "email": ["Email"],
            "phone": ["Phone"],
            "birthday": ["Date of birth"],
            "job_title": ["Job Title"],
        },
    ),
    "atomic_crm": (
        ATOMIC_CRM,
        {
            "first_name": ["first_name"],
            "last_name": ["last_name"],
            "job_title": ["title"],
            "company": ["company_name", "company"],
            "email": ["email_work", "email_home", "email_other"],
            "phone": ["phone_work", "phone_home", "phone_other"],
        },
    ),
    "legislators": (
        LEGISLATORS,
        {
            "last_name": ["last_name"],
            "first_name": ["first_name"],
            "full_name": ["full_name"],
            "birthday": ["birthday"],
            "phone": ["phone"],
        },
    ),
}


@pytest.mark.parametrize("export", list(EXPECTED))
def test_header_rows_of_common_exports_are_recognised(export: str) -> None:
    headers, expected = EXPECTED[export]

    mapping = map_headers(headers, contact_field_names())

    assert mapping.columns == expected
    mapped = [h for feeding in expected.values() for h in feeding]
    assert sorted(mapping.unmapped) == sorted(set(headers) - set(mapped))
    assert [header for header, _ in mapping.as_pairs(headers)] == headers


@pytest.mark.parametrize(
    ("header", "normalized"),
    [
        ("First Name", "firstname"),
        ("first_name", "firstname"),
        ("FIRST-NAME", "firstname"),
        ("  E-mail 1 - Value ", "email1value"),
        ("Country/Region", "countryregion"),
        ("Straße", "strasse"),
    ],
)
def test_headers_are_compared_ignoring_case_spaces_and_punctuation(
    header: str, normalized: str
) -> None:
    assert normalize_header(header) == normalized


def test_explicit_mapping_overrides_recognition_and_ignores_columns(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    path = write_csv(
        tmp_path / "de.csv",
        [
            ["Vorname", "Nachname", "E-Mail", "Firma", "Title", "Intern"],
            ["Grete", "Weiskopf", "grete@example.de", "Acme GmbH", "Dr.", "geheim"],
        ],
    )
    tenant = make_tenant()
    options = {
        "mapping": {
            "Vorname": "first_name",
            "nachname": "last_name",  # matched by its normalised form
            "Firma": "company",
            "Title": "",  # would be the job title (fallback); ignored
            "Intern": "",
        }
    }

    record = import_file(tenant, path, options)

    assert record.status == BulkImport.Status.SUCCEEDED, record.failure_reason
    with schema_context(tenant.schema_name):
        grete = Contact.objects.select_related("company").get()
        record.refresh_from_db()
    assert (grete.first_name, grete.last_name, grete.email) == (
        "Grete",
        "Weiskopf",
        "grete@example.de",
    )
    assert (grete.company.name, grete.job_title, grete.extra) == ("Acme GmbH", "", {})
    assert record.column_mapping == [
        ["Vorname", "first_name"],
        ["Nachname", "last_name"],
        ["E-Mail", "email"],
        ["Firma", "company"],
        ["Title", ""],
        ["Intern", ""],
    ]


@pytest.mark.parametrize(
    ("mapping", "reason"),
    [
        ({"Vorname": "given_name"}, "unknown field(s): 'Vorname' -> 'given_name'"),
        ({"Vorname": "extra"}, "unknown field(s): 'Vorname' -> 'extra'"),
        ({"Geburtstag": "birthday"}, "column(s) the file does not have: 'Geburtstag'"),
    ],
)
def test_bad_explicit_mapping_fails_before_any_row_is_written(
    mapping: dict[str, str],
    reason: str,
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
) -> None:
    from crm.models import Contact

    path = write_csv(tmp_path / "de.csv", [["Vorname", "Email"], ["Grete", "g@example.de"]])
    tenant = make_tenant()

    record = import_file(tenant, path, {"mapping": mapping})

    assert record.status == BulkImport.Status.FAILED
    assert reason in record.failure_reason
    assert (record.processed_rows, record.created_count) == (0, 0)
    with schema_context(tenant.schema_name):
        assert not Contact.objects.exists()


def test_unmapped_columns_are_reported_instead_of_kept(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    from crm.models import Contact

    path = write_csv(
        tmp_path / "leads.csv",
        [
            ["First Name", "Email 1", "Email 2", "Lead Owner", "Notes"],
            ["Jaime", "jaime@example.com", "j2@example.com", "Selena", "call back"],
        ],
    )
    tenant = make_tenant()

    result = run_command(
        "import_contacts", str(path), "--tenant", tenant.schema_name, "--sync",
        "--unmapped", "report",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert "Columns that fed no field (not stored): 'Lead Owner', 'Notes'" in result.stdout
    with schema_context(tenant.schema_name):
        jaime = Contact.objects.get()
        record = BulkImport.objects.get()
    # The second e-mail is a mapped column's other value: still kept. Unmapped columns are not.
    assert jaime.extra == {"Email 2": "j2@example.com"}
    assert record.column_mapping == [
        ["First Name", "first_name"],
        ["Email 1", "email"],
        ["Email 2", "email"],
        ["Lead Owner", ""],
        ["Notes", ""],
    ]


def test_unmapped_columns_are_kept_in_extra_by_default(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    path = write_csv(tmp_path / "l.csv", [["First Name", "Lead Owner"], ["Jaime", "Selena"]])
    tenant = make_tenant()

    result = run_command("import_contacts", str(path), "--tenant", tenant.schema_name, "--sync")

    assert result.exit_code == 0, result.stderr
    assert "Columns that fed no field (kept in extra): 'Lead Owner'" in result.stdout


def test_file_without_name_or_email_column_lists_its_headers(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    path = write_csv(tmp_path / "x.csv", [["Index", "Website", "Notes"], ["1", "w", "n"]])
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert record.status == BulkImport.Status.FAILED
    assert "Headers found: 'Index', 'Website', 'Notes'" in record.failure_reason


def test_command_mapping_from_json_or_file_and_its_errors(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    path = write_csv(tmp_path / "de.csv", [["Vorname", "Mail"], ["Grete", "g@example.de"]])
    mapping_file = tmp_path / "mapping.json"
    mapping_file.write_text(json.dumps({"Vorname": "first_name", "Mail": "email"}))
    base = ("import_contacts", str(path), "--tenant", tenant.schema_name, "--sync")

    unknown = run_command(*base, "--mapping", '{"Vorname": "vorname"}')
    not_json = run_command(*base, "--mapping", "{Vorname: first_name}")
    missing = run_command(*base, "--mapping", str(tmp_path / "nope.json"))
    from_file = run_command(*base, "--mapping", str(mapping_file))

    assert unknown.exit_code == 1
    assert "unknown field(s): 'Vorname' -> 'vorname'" in unknown.stderr
    assert not_json.exit_code == 1
    assert "--mapping is not valid JSON" in not_json.stderr
    assert missing.exit_code == 1
    assert "--mapping is neither a JSON object nor a readable file" in missing.stderr
    assert from_file.exit_code == 0, from_file.stderr
    with schema_context(tenant.schema_name):
        assert BulkImport.objects.count() == 1  # the refused runs stored nothing
        assert list(Contact.objects.values_list("first_name", "email")) == [
            ("Grete", "g@example.de")
        ]


def test_map_headers_raises_for_unknown_target() -> None:
    with pytest.raises(ImportFileError, match="unknown field"):
        map_headers(["Name"], contact_field_names(), {"Name": "nickname"})
