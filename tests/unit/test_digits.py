"""Resident numbers and other codes reach the hub in ASCII digits, whatever digits the feed wrote them in."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.csv_export import Row, RowError
from connectors.mapping import default_mapping
from connectors.shogai import client_from_row
from schemas.digits import ascii_digits, to_ascii_digits
from schemas.events import ConsentV1, PersonRecord
from schemas.fhir_consent import InvalidConsentDocument, jiritsu_consent, parse_consent, to_fhir
from schemas.normalize import phone_key

# Every decimal digit Unicode has (category Nd), by script.
DECIMAL_DIGITS = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Nd"]
ZEROS = [ch for ch in DECIMAL_DIGITS if unicodedata.decimal(ch) == 0]


def in_script(number: str, zero: str) -> str:
    """The ASCII number written with the digits of the script whose zero is ``zero``."""
    return "".join(chr(ord(zero) + int(d)) for d in number)


@given(st.from_regex(r"[0-9]{1,12}", fullmatch=True), st.sampled_from(ZEROS))
def test_ascii_digits_reads_any_script(number: str, zero: str) -> None:
    """A number in any script's decimal digits (full-width, Arabic-Indic, Devanagari …) becomes ASCII."""
    assert ascii_digits(in_script(number, zero)) == number
    assert to_ascii_digits(f"No.{in_script(number, zero)}番") == f"No.{number}番"


@given(st.text(max_size=12))
def test_ascii_digits_is_ascii_digits_or_none(text: str) -> None:
    """Whatever comes in, the result is None or ASCII 0-9 only (never another script's digit)."""
    out = ascii_digits(text)
    assert out is None or (out.isascii() and out.isdigit())


@pytest.mark.parametrize("value", ["", "  ", "10-55", "①２３", "12³", "一二三", "1055a", None, 1.5, True, b"123"])
def test_ascii_digits_refuses_what_is_not_a_number_in_digits(value: object) -> None:
    """Letters, dashes, circled/superscript digits, kanji numerals and non-text values are not codes."""
    assert ascii_digits(value) is None


def test_ascii_digits_drops_whitespace_of_any_width() -> None:
    """A number typed in groups (full-width spaces included) is one code."""
    assert ascii_digits("　１０５５ ４３３ ００６ ") == "1055433006"
    assert ascii_digits(1055433006) == "1055433006"


@pytest.mark.parametrize("written", ["１０５５４３３００６", "١٠٥٥٤٣٣٠٠٦", "१०५५४३३००६", "1055433006"])
def test_person_record_keeps_resident_and_household_numbers_in_ascii(written: str) -> None:
    """PersonRecord stores 宛名番号/世帯番号 in ASCII, so registry:１０５５… and registry:1055… are one key."""
    p = PersonRecord(record="r", name="試験 花子", resident_no=written, household_no=written)
    assert p.resident_no == p.household_no == "1055433006"


@pytest.mark.parametrize("written", ["①０５５４３３００６", "105543300", "10554330061", "1055-433-006", ""])
def test_person_record_refuses_numbers_it_cannot_read_without_echoing_them(written: str) -> None:
    """A number that is not ten digits is refused; the error names the field and the reason, not the value."""
    with pytest.raises(ValidationError) as info:
        PersonRecord(record="r", name="試験 花子", resident_no=written)
    [err] = info.value.errors()
    assert err["loc"] == ("resident_no",)
    if written:
        assert written not in err["msg"]


def test_consent_subject_number_is_ascii() -> None:
    """ConsentV1 and the FHIR reader store the subject's number in ASCII digits; garbage is refused."""
    consent = jiritsu_consent("jiritsu:J1", "١٠٥٥٤٣٣٠٠٦", date(2025, 10, 5), datetime(2025, 10, 6))
    assert consent.subject_resident_no == "1055433006"
    doc = to_fhir(consent)
    doc["subject"]["identifier"]["value"] = "１０５５４３３００６"
    assert parse_consent(doc).subject_resident_no == "1055433006"
    doc["subject"]["identifier"]["value"] = "１０５５４３３００①"
    with pytest.raises(InvalidConsentDocument, match="not a 10-digit resident number"):
        parse_consent(doc)
    with pytest.raises(ValidationError):
        ConsentV1.model_validate({**consent.model_dump(), "subject_resident_no": "105543300x"})


def test_csv_connector_reads_resident_numbers_in_other_digits() -> None:
    """The CSV feeds' 宛名番号 in Arabic-Indic digits keys as ASCII; a malformed one is still refused by column."""
    mapping = default_mapping("houkatsu")
    assert Row(mapping, {"宛名番号": "١٠٥٥٤٣٣٠٠٦"}).resident_no("宛名番号") == "1055433006"
    with pytest.raises(RowError, match="malformed 宛名番号"):
        Row(mapping, {"宛名番号": "١٠٥٥"}).resident_no("宛名番号")


def test_shogai_connector_reads_resident_numbers_in_other_digits() -> None:
    """The shogai database's atena_no in Devanagari digits keys as ASCII."""
    client = client_from_row({"riyousha_id": 1, "atena_no": "१०५५४३३००६", "shimei": "試験 花子", "seibetsu": "2"})
    assert client.person.resident_no == "1055433006"


def test_phone_key_reads_other_digits() -> None:
    """A phone number in other digits keys as its ASCII digits instead of losing them."""
    assert phone_key("٠٧٣-٥١٨١") == "0735181"
