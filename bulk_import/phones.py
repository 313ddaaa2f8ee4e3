"""Phone numbers to E.164, by ``phonenumbers`` (the Python port of Google's libphonenumber).

``parse_phone(value, region)`` is ``phonenumbers.parse`` + ``is_valid_number`` +
``format_number(E164)``, with shortcuts that give the library's own results faster:

- **plain numbers** (digits, spaces, ``-``, ``.``, parentheses and at most a leading ``+``: what
  most contact files hold) skip the library's text parsing when nothing in the number's leading
  digits would make the library do more than strip the separators: no international dialling
  prefix, no national prefix, no leading country code of the region and no leading zero, as the
  library's own metadata for the region (or for the ``+`` country code) defines them. The number
  is then the region's (or the ``+`` country code's) country code and those digits, which is what
  ``phonenumbers.parse`` returns for it; anything else, and every error, goes to
  ``phonenumbers.parse`` itself. Validity and the E.164 form are always the library's.
  ``phonenumbers.parse`` spends most of its 15 µs normalising each character through its
  Unicode tables; the shortcut takes about 3 µs.
- **the first region of a shared country code**: ``is_valid_phone_number``, below.
- **validity for a region** (``_valid_for_region``): ``phonenumbers.is_valid_number_for_region``
  finds the number's type, trying its region's descriptions of premium-rate, toll-free and six
  other kinds of numbers before fixed-line and mobile ones: ten pattern matches for an ordinary
  number. Valid means that the number matches the general description and one of those; the
  same descriptions, tried fixed-line and mobile first, answer in two matches for most numbers.

Tests compare ``parse_phone`` with the library's functions on every phone value of
``../shared/data`` and on generated numbers in several regions (tests/test_bulk_import_phones.py).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import phonenumbers

if hasattr(phonenumbers, "enable_pattern_cache"):
    # phonenumbers' documented switch: keep its compiled metadata patterns instead of asking
    # re.compile (a cache lookup, about 1 µs) for each of the ~12 patterns a number is matched
    # against; about 15 % of the time of phonenumbers.parse.
    phonenumbers.enable_pattern_cache()

#: Valid phone numbers whose parsed form is kept per process (value, region -> result).
PHONE_CACHE_SIZE = 4096
#: A plain number: ASCII digits and separators after opening parentheses or spaces and at most
#: one ``+``, which ``phonenumbers`` reads as its digits alone (with the ``+``); then perhaps an
#: extension written ``x123`` (phonenumbers' ``_EXTN_PATTERNS_FOR_PARSING``: up to 9 digits
#: after an ``x``).
_PLAIN_NUMBER = re.compile(r"[ (]*(\+?)([0-9][0-9 ().\-]*?)(?: *x *([0-9]{1,9}))?")
_NOT_DIGITS = re.compile(r"[^0-9]+")
#: phonenumbers' bounds: a national number has 2 to 17 digits (``_MIN_LENGTH_FOR_NSN``,
#: ``_MAX_LENGTH_FOR_NSN``); text longer than 250 characters is not parsed.
_NATIONAL_NUMBER_DIGITS = range(2, 18)
_MAX_INPUT_LENGTH = 250


class InvalidPhoneNumber(ValueError):
    """A value that is not a valid phone number; the message says why, for the uploader."""


@functools.lru_cache(maxsize=PHONE_CACHE_SIZE)
def parse_phone(value: str, region: str | None) -> tuple[str, str]:
    """Return ``value`` in E.164 form (e.g. ``"+12025550173"``) and its extension (or ``""``).

    ``region`` is the ISO 3166-1 alpha-2 region (upper case) of numbers written without
    ``+country code`` (None: such numbers are invalid). Raises InvalidPhoneNumber when
    phonenumbers cannot parse the number or finds it invalid (``is_valid_number``: length and
    prefix fit the region's numbering plan). A valid number's result is kept
    (``PHONE_CACHE_SIZE`` values): a file that repeats a number (a company's switchboard) parses
    it once.
    """
    number = plain_number(value, region) or _parse(value, region)
    if not is_valid_phone_number(number, region):
        where = phonenumbers.region_code_for_number(number) or region or "any region"
        raise InvalidPhoneNumber(
            f"{value!r} is not a valid phone number (checked as a {where} number; write numbers "
            "of other countries with +country code)."
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), (
        number.extension or ""
    )


def _parse(value: str, region: str | None) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            reason = (
                "it has no valid +country code"
                if region is None
                else f"it has no valid +country code and is not a {region} number"
            )
        else:
            reason = str(exc).rstrip(".")
        raise InvalidPhoneNumber(f"{value!r} is not a phone number: {reason}.") from None


def plain_number(value: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """``phonenumbers.parse(value, region)`` for a plain number, or None when ``value`` is not
    one (then only the library can tell).

    A plain number is digits with spaces, ``-``, ``.`` or parentheses between them, perhaps an
    extension (``x123``) after them, and either a ``+`` and a country code first, or
    ``region``'s national number. It is the number phonenumbers makes of it when, after the
    country code (``_extract_country_code``: the shortest leading digits that are a country
    code), its digits do not start with ``0`` (an Italian leading zero) nor match the plan's
    ``national_prefix_for_parsing``, and, without ``+``, do not match ``international_prefix``
    nor start with the region's own country code (each would have ``parse`` strip or test those
    digits), and the national number has 2 to 17 digits.
    """
    if len(value) > _MAX_INPUT_LENGTH:
        return None
    match = _PLAIN_NUMBER.fullmatch(value)
    if match is None:
        return None
    sign, number, extension = match.groups()
    digits = _NOT_DIGITS.sub("", number)
    if extension and len(digits) < 3:
        return None  # phonenumbers keeps an extension only after a viable number: 3 digits
    if sign:  # +country code, which never starts with 0
        if digits[0] == "0":
            return None
        for length in (1, 2, 3):
            plan = _country_plan(int(digits[:length]))
            if plan is not None:
                break
        else:
            return None
        national = digits[length:]
    else:
        if region is None:
            return None
        plan = _region_plan(region)
        if plan is None:
            return None
        if (
            plan.international_prefix is not None and plan.international_prefix.match(digits)
        ) or digits.startswith(plan.country_code_text):
            return None
        national = digits
    if (
        len(national) not in _NATIONAL_NUMBER_DIGITS
        or national[0] == "0"
        or (plan.national_prefix is not None and plan.national_prefix.match(national))
    ):
        return None
    return phonenumbers.PhoneNumber(
        country_code=plan.country_code, national_number=int(national), extension=extension
    )


class _NumberingPlan(NamedTuple):
    """What plain_number needs of a numbering plan (phonenumbers' metadata): its country code
    (also as text, compared with a number's first digits), and its compiled
    ``national_prefix_for_parsing`` and ``international_prefix`` (None when it has none)."""

    country_code: int
    country_code_text: str
    national_prefix: re.Pattern[str] | None
    international_prefix: re.Pattern[str] | None

    @classmethod
    def of(cls, metadata: phonenumbers.PhoneMetadata) -> _NumberingPlan:
        def compiled(pattern: str | None) -> re.Pattern[str] | None:
            return re.compile(pattern) if pattern else None

        return cls(
            metadata.country_code,
            str(metadata.country_code),
            compiled(metadata.national_prefix_for_parsing),
            compiled(metadata.international_prefix),
        )


@functools.cache
def _region_plan(region: str) -> _NumberingPlan | None:
    """The numbering plan of ``region``, None for a region phonenumbers does not know."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    return None if metadata is None else _NumberingPlan.of(metadata)


@functools.cache
def _country_plan(country_code: int) -> _NumberingPlan | None:
    """The numbering plan ``parse`` uses for a number written ``+country_code``: that of the
    country code's main region (or its non-geographic entity); None when no region has it."""
    if country_code not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        return None
    main_region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, main_region
    )
    return None if metadata is None else _NumberingPlan.of(metadata)


class _NumberDesc(NamedTuple):
    """A description of a kind of number in phonenumbers' metadata (``PhoneNumberDesc``): the
    national numbers' lengths (None: any) and compiled ``national_number_pattern``."""

    lengths: frozenset[int] | None
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, desc: phonenumbers.PhoneNumberDesc | None) -> _NumberDesc | None:
        """None for a description no number matches (none, or without a pattern)."""
        if desc is None or not desc.national_number_pattern:
            return None
        lengths = frozenset(desc.possible_length) if desc.possible_length else None
        return cls(lengths, re.compile(desc.national_number_pattern))

    def matches(self, national_number: str) -> bool:
        """phonenumbers' ``_is_number_matching_desc``: the length is one of the description's
        (when it lists some) and the whole number matches its pattern."""
        if self.lengths is not None and len(national_number) not in self.lengths:
            return False
        return self.pattern.fullmatch(national_number) is not None


@functools.cache
def _validity_descs(region: str) -> tuple[_NumberDesc | None, tuple[_NumberDesc, ...]]:
    """``region``'s general description and the descriptions of the kinds of numbers that make a
    number valid there, most common first: fixed-line, mobile (unless its pattern is the
    fixed-line one: phonenumbers then never tests it), then the others in the library's order.
    Raises KeyError for a region phonenumbers has no metadata for."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        raise KeyError(region)
    kinds = [metadata.fixed_line]
    if not metadata.same_mobile_and_fixed_line_pattern:
        kinds.append(metadata.mobile)
    kinds += [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
    ]
    descs = tuple(desc for desc in map(_NumberDesc.of, kinds) if desc is not None)
    return _NumberDesc.of(metadata.general_desc), descs


def _valid_for_region(number: phonenumbers.PhoneNumber, region: str) -> bool:
    """``phonenumbers.is_valid_number_for_region(number, region)`` for a number whose country code
    is ``region``'s: its type is not UNKNOWN (``_number_type_helper``) exactly when its national
    significant number matches the general description and the description of one kind of
    number, whichever is tried first."""
    general, kinds = _validity_descs(region)
    national_number = phonenumbers.national_significant_number(number)
    if general is None or not general.matches(national_number):
        return False
    return any(kind.matches(national_number) for kind in kinds)


def is_valid_phone_number(number: phonenumbers.PhoneNumber, region: str | None) -> bool:
    """``phonenumbers.is_valid_number(number)``, in one look at the number's patterns instead of
    two when ``number`` is valid for ``region`` and ``region`` is where it is looked first.

    ``is_valid_number`` first finds the number's region: the only region of its country code, or,
    for a country code shared by several regions (+1: US, CA, the Caribbean...), the first in
    the library's order whose patterns the number matches (or, for a region with leading digits,
    whose leading digits it starts with); then it checks the number against that region's
    patterns (``is_valid_number_for_region``). A country code's only region is checked at once;
    when the first region tried is ``region`` itself and has no leading digits, a number valid for
    ``region`` is the one that search returns, so it is valid; anything else (and non-geographic
    numbers, +800 and such) is left to ``is_valid_number``.
    """
    sole_region = _sole_region(number.country_code)
    if sole_region is not None:
        return _valid_for_region(number, sole_region)
    if (
        region is not None
        and _looked_first(region, number.country_code)
        and _valid_for_region(number, region)
    ):
        return True
    return phonenumbers.is_valid_number(number)


@functools.cache
def _sole_region(country_code: int) -> str | None:
    """The region of ``country_code`` when it has one, and metadata of its own (not a
    non-geographic entity, "001"); None otherwise."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) != 1 or regions[0] == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return None
    if phonenumbers.PhoneMetadata.metadata_for_region(regions[0], None) is None:
        return None
    return regions[0]


@functools.cache
def _looked_first(region: str, country_code: int) -> bool:
    """Whether ``country_code`` is shared by several regions and ``region_code_for_number`` tries
    ``region`` first for its numbers, deciding by their patterns (no leading digits)."""
    regions = phonenumbers.region_codes_for_country_code(country_code)
    if len(regions) < 2 or regions[0] != region:
        return False
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    return metadata is not None and metadata.leading_digits is None
