"""Phone numbers to E.164 (bulk_import/phones.py): the results are phonenumbers' own, with and
without the shortcuts, on every phone value of ../shared/data and on generated numbers."""

from __future__ import annotations

import functools
import random
from contextlib import suppress

import phonenumbers
import pytest

from tests.conftest import SHARED_DATA


def test_a_repeated_phone_number_is_parsed_once_and_invalid_ones_every_time() -> None:
    from bulk_import.phones import InvalidPhoneNumber, parse_phone

    parse_phone.cache_clear()
    for _ in range(3):
        assert parse_phone("(212) 555-0143 x12", "US") == ("+12125550143", "12")
    for _ in range(2):
        with pytest.raises(InvalidPhoneNumber, match="not a valid phone number"):
            parse_phone("(000) 000-0000", "US")
    info = parse_phone.cache_info()
    # The valid number parsed once, then found twice; the invalid one (an exception, not a
    # result) parsed each time, so that each row gets its message.
    assert (info.hits, info.misses, info.currsize) == (2, 3, 1)


@functools.cache
def shared_phone_numbers() -> list[str]:
    """Every value of a phone column (by the importer's own reader and mapping) in the contacts
    files of ``../shared/data``."""
    from bulk_import.mapping import CONTACT_FIELDS, map_headers
    from bulk_import.readers import ImportFileError, ReadLimits, open_reader

    numbers: set[str] = set()
    for path in sorted((SHARED_DATA / "contacts").rglob("*.csv")):
        with path.open("rb") as file:
            reader = open_reader(file, "csv", limits=ReadLimits())
            try:
                mapping = map_headers(reader.headers, set(CONTACT_FIELDS))
            except ImportFileError:
                continue
            headers = mapping.columns.get("phone", [])
            for _, row in reader.rows():
                numbers.update(row[header] for header in headers if row[header])
    return sorted(numbers)


@pytest.mark.parametrize(
    ("value", "region", "valid"),
    [
        ("(212) 555-0143", "US", True),  # valid for the first region of +1: one look
        ("(416) 555-0143", "US", True),  # Toronto: not a US number, valid as Canada's
        ("(268) 464-1234", "US", True),  # Antigua and Barbuda
        ("(199) 555-0143", "US", False),  # no region of +1 has area code 199
        ("020 8366 1177", "GB", True),
        ("01481 256789", "GB", True),  # Guernsey: +44, not valid as GB, valid as GG
        ("+1 416 555 0143", "GB", True),  # another country code than the region's
    ],
)
def test_phone_numbers_valid_in_another_region_of_the_country_code_stay_valid(
    value: str, region: str, valid: bool
) -> None:
    from bulk_import.phones import _looked_first, is_valid_phone_number

    number = phonenumbers.parse(value, region)

    assert is_valid_phone_number(number, region) is phonenumbers.is_valid_number(number) is valid
    assert _looked_first("US", 1) and _looked_first("GB", 44)
    # Canada is not tried first for +1, France is alone on +33, Russia has leading digits on +7.
    assert not (_looked_first("CA", 1) or _looked_first("FR", 33) or _looked_first("RU", 7))


#: Regions with different numbering plans: shared country codes (US, CA), national prefixes (GB,
#: DE, FR, IT, AU, NL: 0; RU: 8; AR and MX with transform rules), international prefixes (00,
#: 011, 810, 0011), leading zeros kept (IT), and no region at all.
PLAN_REGIONS = [
    "US",
    "CA",
    "GB",
    "DE",
    "RU",
    "FR",
    "IT",
    "BR",
    "IN",
    "AU",
    "AR",
    "MX",
    "JP",
    "NL",
    None,
]


def generated_phone_values(count: int, seed: int = 20261121) -> list[str]:
    """``count`` random digit strings of 1 to 16 digits written the ways files write numbers:
    bare, with ``+``, ``(area) rest``, ``+cc area-rest``, after ``00`` or ``1``, with an
    extension (``x``, ``ext.``, ``#``...)."""
    rnd = random.Random(seed)
    values = []
    for _ in range(count):
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 16)))
        extension = str(rnd.randint(0, 10 ** rnd.randint(1, 11)))
        values.append(
            rnd.choice(
                [
                    digits,
                    "+" + digits,
                    f"({digits[:3]}) {digits[3:]}",
                    f"+{digits[:2]} {digits[2:5]}-{digits[5:]}",
                    "00" + digits,
                    "1" + digits,
                    digits + rnd.choice([" x", "x", " x ", " ext. ", " #", "x-", " X"]) + extension,
                    f"({digits[:3]}) {digits[3:]}" + rnd.choice([" x", "-x", ") x"]) + extension,
                    f" ({digits[:3]}).{digits[3:6]}.{digits[6:]}.",
                ]
            )
        )
    return values


@functools.cache
def phone_values() -> list[str]:
    values = generated_phone_values(4000)
    if (SHARED_DATA / "contacts").is_dir():
        values += shared_phone_numbers()
    return values


def library_result(value: str, region: str | None) -> tuple[str, ...]:
    """What phonenumbers alone makes of ``value``: (E.164, extension), ("invalid",) or
    ("unparsable", its exception's message)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        return ("unparsable", str(exc))
    if not phonenumbers.is_valid_number(number):
        return ("invalid",)
    return (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        number.extension or "",
    )


@pytest.mark.parametrize("region", PLAN_REGIONS)
def test_plain_numbers_are_what_phonenumbers_parses_them_to(region: str | None) -> None:
    from bulk_import.phones import plain_number

    shortcut = 0
    for value in phone_values():
        number = plain_number(value, region)
        if number is None:
            continue
        shortcut += 1
        assert number == phonenumbers.parse(value, region), value
    # The shortcut is taken for a good share of the values (else it would be useless).
    assert shortcut > 1000


@pytest.mark.parametrize("region", ["US", "CA", "GB", "DE", "RU", "IT", "AR", None])
def test_parse_phone_results_are_the_librarys(region: str | None) -> None:
    from bulk_import.phones import InvalidPhoneNumber, parse_phone

    for value in phone_values():
        expected = library_result(value, region)
        try:
            got: tuple[str, ...] = parse_phone.__wrapped__(value, region)
        except InvalidPhoneNumber as exc:
            got = ("invalid",) if "is not a valid phone number" in str(exc) else ("unparsable",)
        assert got[0] == expected[0] or got[0] == expected[0] == "unparsable", value
        assert got == expected[: len(got)], value


@pytest.mark.parametrize(
    ("value", "region", "number"),
    [
        ("(212) 555-0143", "US", (1, 2125550143, None)),
        ("212.555.0143 x12", "US", (1, 2125550143, "12")),
        ("+44 20 7946 0958", "US", (44, 2079460958, None)),
        ("+1 (416) 555-0143", "GB", (1, 4165550143, None)),
        ("030 1234567", "DE", None),  # national prefix 0: parse strips it
        ("1-212-555-0143", "US", None),  # the region's country code first: parse tests it
        ("011 44 20 7946 0958", "US", None),  # international prefix
        ("+39 06 1234 5678", "US", None),  # Italian leading zero
        ("+0 123 456", "US", None),  # no country code starts with 0
        ("212-555-0143", None, None),  # no region, no +
        ("1-800-FLOWERS", "US", None),  # letters
        ("12 x34", "US", None),  # an extension needs a viable number before it
    ],
)
def test_the_plain_number_shortcut_takes_only_numbers_without_prefixes(
    value: str, region: str | None, number: tuple[int, int, str | None] | None
) -> None:
    from bulk_import.phones import plain_number

    parsed = plain_number(value, region)

    if number is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.country_code, parsed.national_number, parsed.extension) == number
        assert parsed == phonenumbers.parse(value, region)


def numbers_for_region(
    region: str, count: int, seed: int = 20261121
) -> list[phonenumbers.PhoneNumber]:
    """The library's example number of each kind for ``region`` (valid by construction), and
    ``count`` random national numbers of the lengths its general description allows (mostly
    invalid, some valid), all with ``region``'s country code."""
    rnd = random.Random(f"{seed}-{region}")
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    numbers = [
        example
        for kind in phonenumbers.PhoneNumberType.values()
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    lengths = [length for length in metadata.general_desc.possible_length if length > 0] or [8]
    for _ in range(count):
        digits = str(rnd.randint(1, 9)) + "".join(
            rnd.choice("0123456789") for _ in range(rnd.choice(lengths) - 1)
        )
        numbers.append(
            phonenumbers.PhoneNumber(
                country_code=metadata.country_code, national_number=int(digits)
            )
        )
    return numbers


def test_validity_for_a_region_is_the_librarys_in_every_region() -> None:
    from bulk_import.phones import _valid_for_region

    valid = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number in numbers_for_region(region, 150):
            expected = phonenumbers.is_valid_number_for_region(number, region)
            assert _valid_for_region(number, region) is expected, (region, number)
            valid += expected
    # Every region's example numbers at least: the valid side is tested, not only rejections.
    assert valid > 2 * len(phonenumbers.SUPPORTED_REGIONS)


@pytest.mark.parametrize("region", PLAN_REGIONS)
def test_phone_verdicts_are_the_librarys_on_generated_and_shared_numbers(
    region: str | None,
) -> None:
    from bulk_import.phones import is_valid_phone_number

    numbers = []
    for value in phone_values():
        with suppress(phonenumbers.NumberParseException):
            numbers.append(phonenumbers.parse(value, region))
    assert len(numbers) > 1000
    mismatches = [
        (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), expected)
        for number in numbers
        if is_valid_phone_number(number, region)
        != (expected := phonenumbers.is_valid_number(number))
    ]
    assert mismatches == []
