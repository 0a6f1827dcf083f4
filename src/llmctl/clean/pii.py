"""Privacy reduction: replace personal data with typed placeholders (<EMAIL>, <PHONE>, ...).

Candidates are found by pattern and then validated, so that ordinary numbers survive: card
numbers must pass the Luhn check, IBANs their mod-97 checksum and country length, IP
addresses must parse (`ipaddress`), phone numbers must be valid numbers for their region
(`phonenumbers`, Google's libphonenumber metadata). Dates, years, prices, versions and ISBNs
fail these checks and stay untouched. tests/assets/pii/ holds the labelled set that measures it.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

import phonenumbers

PLACEHOLDER = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "ip": "<IP>",
    "card": "<CARD>",
    "iban": "<IBAN>",
    "ssn": "<SSN>",
    "secret": "<SECRET>",
}

_SECRET = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"|\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"
    r"|(?i:aws_secret_access_key)\s*[=:]\s*[\"']?[A-Za-z0-9/+]{40}\b[\"']?"
    r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"
    r"|\bsk_(?:live|test)_[A-Za-z0-9]{24,}\b"
    r"|(?<=[Bb]earer )[A-Za-z0-9\-._~+/]{20,}=*"
)
# Every secret pattern above contains one of these (the Bearer token follows "earer "); a text
# with none of them skips the secret regex, the slowest of the scrubber's patterns (its
# alternatives share no literal prefix, so it is tried at every position).
_SECRET_HINTS = ("PRIVATE KEY", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "xox", "sk_live_", "sk_test_")
_SECRET_HINTS += ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "earer ")
_SECRET_HINT_CI = re.compile(r"(?i)aws_secret_access_key")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b")
# Speed: a pattern that opens with a lookbehind is tried at every position of the text; one that
# opens with a character class lets the regex engine skip ahead to the next possible first
# character. So the patterns below match their first character, then look behind it:
# "\d(?<![\w-]\d)" is "(?<![\w-])\d" (at the start of the text the 2-wide lookbehind cannot
# match, as the 1-wide one cannot), "[A-Z](?<!\w[A-Z])" is "\b[A-Z]". Same matches (tested).
_SSN = re.compile(r"\d(?<![\d-]\d)\d\d(?<!000|666|9\d\d)-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")
# every IPv6 candidate holds two colons at most 4 hex digits apart; a text without that skips it
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_CARD = re.compile(r"\d(?<![\w-]\d)(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}\b")
# the patterns as first written (the tests check the fast ones above find the same matches)
REFERENCE = {
    "ssn": r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])",
    "ipv4": r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)",
    "card": r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])",
    "iban": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
    "phone": r"(?<![\w+.,/-])(?:\+|00)?\(?\d[\d ().\-/]{5,20}\d(?![\w-]|[.,]\d)",
}
# a phone candidate: optional + (or 00) and '(', then digits with common separators; validated
# below. Written to open with its first character, as above: after "[+(\d]", one branch per
# kind of opening ('+', '00', '(', a digit) in the order the reference pattern tries them.
_PHONE = re.compile(
    r"[+(\d](?<![\w+.,/-].)(?:(?<=\+)\(?\d|(?<=0)0\(?\d|(?<=\()\d|(?<=\d))[\d ().\-/]{5,20}\d(?![\w-]|[.,]\d)"
)

# IBAN lengths per country (ISO 13616 registry, the countries most often seen)
_IBAN_LEN = {
    "AD": 24,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TR": 26,
}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if _IBAN_LEN.get(s[:2]) != len(s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card_ok(m: str) -> bool:
    digits = re.sub(r"[ -]", "", m)
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    if digits.startswith(("978", "979")) and len(digits) == 13:  # ISBN-13, not a card
        return False
    return luhn_ok(digits)


def _ipv4_ok(m: str) -> bool:
    try:
        ipaddress.IPv4Address(m)
    except ValueError:
        return False
    return True


def _ipv6_ok(m: str) -> bool:
    if m.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", m):
        return False
    if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?", m):  # a time of day
        return False
    try:
        ipaddress.IPv6Address(m.split("%", 1)[0])
    except ValueError:
        return False
    return True


_DATE_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")


def _national_shape(m: str, digits: str) -> bool:
    """How national numbers are written: trunk-prefixed or area-code groups, no 1-digit tail.

    Rejects lists of small numbers ("4 8 15 16 23"), ISBN-10s ("0-306-40615-2"), population
    counts ("3 645 000") and long product codes written without separators.
    """
    groups = [g for g in re.split(r"[^\d]+", m) if g]
    if len(groups) == 1:  # written without separators
        return len(digits) in (10, 11) and (digits[0] == "0" or len(digits) == 10)
    if any(len(g) == 1 for g in groups[1:]):
        return False
    return len(groups[0]) > 1 or groups[0] in ("0", "1")


class PhoneMatcher:
    """Validates phone candidates with libphonenumber metadata for the configured regions."""

    def __init__(self, regions: list[str]):
        self.regions = regions

    def __call__(self, m: str) -> bool:
        digits = re.sub(r"\D", "", m)
        if not 7 <= len(digits) <= 15:
            return False
        if _DATE_LIKE.fullmatch(m.strip("() ")) or "." in m and not re.search(r"\d{3}\.\d{3}\.\d{4}", m):
            return False  # dates and dotted version-like numbers
        intl = m.startswith(("+", "00"))
        if not intl and not _national_shape(m, digits):
            return False
        for region in [None] if intl else self.regions:
            try:
                num = phonenumbers.parse(m if not m.startswith("00") else "+" + m[2:], region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(num):
                return True
        return False


def _has_secret_hint(text: str) -> bool:
    return any(h in text for h in _SECRET_HINTS) or _SECRET_HINT_CI.search(text) is not None


class Scrubber:
    """Replaces every enabled PII type in a text; counts replacements per type."""

    def __init__(self, types: list[str], phone_regions: list[str]):
        rules: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
            ("secret", _SECRET, None),
            ("email", _EMAIL, None),
            ("iban", _IBAN, iban_ok),
            ("ssn", _SSN, None),
            ("card", _CARD, _card_ok),
            ("ip", _IPV4, _ipv4_ok),
            ("ip", _IPV6, _ipv6_ok),
            ("phone", _PHONE, PhoneMatcher(phone_regions)),
        ]
        self.rules = [r for r in rules if r[0] in types]

    def __call__(self, text: str) -> tuple[str, Counter[str]]:
        counts: Counter[str] = Counter()
        for kind, pattern, valid in self.rules:
            if kind == "phone" and not any(ch.isdigit() for ch in text):
                continue
            if kind == "secret" and not _has_secret_hint(text):
                continue
            if kind == "email" and "@" not in text:
                continue
            if pattern is _IPV6 and not _IPV6_HINT.search(text):
                continue

            def repl(m: re.Match[str], kind: str = kind, valid: Callable[[str], bool] | None = valid) -> str:
                s = m.group(0)
                if valid is not None and not valid(s):
                    return s
                counts[kind] += 1
                return PLACEHOLDER[kind]

            text = pattern.sub(repl, text)
        return text, counts
