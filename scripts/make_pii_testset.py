"""Generate tests/assets/pii/labelled.jsonl: PII positives in context and hard negatives.

    python scripts/make_pii_testset.py --out tests/assets/pii/labelled.jsonl

Every value is synthetic (seeded): card numbers are Luhn-valid test-range numbers, IBANs carry
correct checksums, phone numbers are checked valid with `phonenumbers`, IPs come from the
documentation ranges and random public space. Hard negatives are the ordinary numbers that
must survive: dates, years, prices, versions, ISBNs, times, order numbers, hashes, UUIDs.
Each line: {"text": ..., "pii": [{"type": ..., "value": ...}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import phonenumbers

R = random.Random(20261122)
FIRST = ["anna", "li", "jose", "maria", "omar", "chen", "sofia", "john", "fatima", "lukas", "noah", "emma"]
LAST = ["smith", "garcia", "mueller", "wang", "rossi", "dubois", "kowalski", "tanaka", "silva", "novak"]
DOMAINS = [
    "example.com",
    "mail.example.org",
    "uni-heidelberg.de",
    "company.co.uk",
    "gmail.com",
    "research.lab.example.net",
    "posteo.de",
    "correo.es",
]
CONTEXTS = [
    "Please contact {} if you have questions about the invoice.",
    "For details write to {} before Friday.",
    "Sent from my phone. Reach me at {} any time.",
    "The account holder ({}) asked us to update the record.",
    "Ansprechpartner: {} (Mo-Fr).",
    "Contacto: {}, gracias.",
    "{} is listed as the emergency contact.",
    "Reply-To: {}",
]


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(R.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError


def iban(country: str, bban_len: int) -> str:
    bban = "".join(R.choice("0123456789") for _ in range(bban_len))
    if country == "GB":
        bban = "NWBK" + bban[4:]
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - num % 97:02d}{bban}"


def group4(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def emails(n: int) -> list[str]:
    out = []
    for _ in range(n):
        f, last, d = R.choice(FIRST), R.choice(LAST), R.choice(DOMAINS)
        user = R.choice(
            [f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{R.randint(1, 99)}", f"{f}+news", f.upper()]
        )
        out.append(f"{user}@{d}")
    return out


def phones(n: int) -> list[str]:
    out: list[str] = []
    regions = ["US", "GB", "DE", "FR", "ES", "IT", "NL"]
    while len(out) < n:
        region = R.choice(regions)
        ex = phonenumbers.example_number(region)
        nsn = str(ex.national_number)
        # vary the last four digits, keep the number valid
        cand = nsn[:-4] + f"{R.randint(0, 9999):04d}"
        num = phonenumbers.parse("+" + str(ex.country_code) + cand)
        if not phonenumbers.is_valid_number(num):
            continue
        fmt = R.choice(
            [
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.E164,
            ]
        )
        s = phonenumbers.format_number(num, fmt)
        if region == "US" and R.random() < 0.4:
            s = R.choice(["{}-{}-{}", "{}.{}.{}"]).format(cand[:3], cand[3:6], cand[6:])
        out.append(s)
    return out


def ips(n: int) -> list[str]:
    out = []
    for i in range(n):
        if i % 3 == 2:
            groups = [f"{R.randint(0, 0xFFFF):x}" for _ in range(8)]
            out.append(
                R.choice(
                    [":".join(groups), "2001:db8::" + groups[0] + ":" + groups[1], "fe80::1ff:fe23:4567:890a"]
                )
            )
        else:
            out.append(".".join(str(R.randint(1, 254)) for _ in range(4)))
    return out


def cards(n: int) -> list[str]:
    out = []
    for _ in range(n):
        kind = R.choice(["visa", "mc", "amex"])
        if kind == "amex":
            d = luhn_complete(R.choice(["34", "37"]), 15)
            out.append(R.choice([d, f"{d[:4]} {d[4:10]} {d[10:]}", f"{d[:4]}-{d[4:10]}-{d[10:]}"]))
        else:
            d = luhn_complete("4" if kind == "visa" else R.choice(["51", "52", "53", "54", "55"]), 16)
            out.append(R.choice([d, group4(d), "-".join(d[i : i + 4] for i in range(0, 16, 4))]))
    return out


def ibans(n: int) -> list[str]:
    spec = {"DE": 18, "GB": 18, "FR": 23, "NL": 14, "ES": 20, "IT": 23}
    out = []
    for _ in range(n):
        c = R.choice(list(spec))
        if c == "NL":
            bban = "ABNA" + "".join(R.choice("0123456789") for _ in range(10))
            num = int("".join(str(int(ch, 36)) for ch in bban + "NL00"))
            v = f"NL{98 - num % 97:02d}{bban}"
        elif c == "IT":
            v = iban("IT", 23)
        else:
            v = iban(c, spec[c])
        out.append(R.choice([v, group4(v)]))
    return out


def ssns(n: int) -> list[str]:
    return [f"{R.randint(1, 665):03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}" for _ in range(n)]


def secrets(n: int) -> list[str]:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    out = []
    for i in range(n):
        k = i % 4
        if k == 0:
            out.append("AKIA" + "".join(R.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)))
        elif k == 1:
            out.append("ghp_" + "".join(R.choice(alnum) for _ in range(36)))
        elif k == 2:
            body = "\n".join("".join(R.choice(alnum + "+/") for _ in range(64)) for _ in range(3))
            out.append(f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----")
        else:
            out.append("".join(R.choice(alnum) for _ in range(32)))  # a bearer token
    return out


def positives() -> list[dict]:
    items = []
    gens = {
        "email": emails(60),
        "phone": phones(70),
        "ip": ips(60),
        "card": cards(60),
        "iban": ibans(40),
        "ssn": ssns(30),
        "secret": secrets(32),
    }
    for kind, values in gens.items():
        for i, v in enumerate(values):
            if kind == "secret" and i % 4 == 3:
                text = f"curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/items"
            elif kind == "ip":
                text = R.choice(
                    [
                        "Connection from {} refused by the firewall.",
                        "Server address: {} (primary).",
                        "The request came from {} at noon.",
                        "ping {} returned no answer.",
                    ]
                ).format(v)
            elif kind == "card":
                text = R.choice(
                    [
                        "Card number: {} exp 04/27.",
                        "Please charge {} for the order.",
                        "Zahlung mit Karte {} erfolgt.",
                    ]
                ).format(v)
            elif kind == "iban":
                text = R.choice(
                    [
                        "Überweisung an IBAN {} bis Monatsende.",
                        "Bank details: IBAN {}, BIC NWBKGB2L.",
                        "Pague a la cuenta {} por favor.",
                    ]
                ).format(v)
            elif kind == "ssn":
                text = R.choice(
                    ["SSN: {}", "Her social security number is {}.", "Applicant SSN {} on file."]
                ).format(v)
            elif kind == "phone":
                text = R.choice(
                    [
                        "Call me at {} tomorrow.",
                        "Tel.: {}",
                        "Phone {} (office hours only).",
                        "Llámame al {} por la tarde.",
                    ]
                ).format(v)
            else:
                text = R.choice(CONTEXTS).format(v)
            items.append({"text": text, "pii": [{"type": kind, "value": v}]})
    # a few mixed records, as in a real e-mail signature
    for _ in range(15):
        e, p, ip = emails(1)[0], phones(1)[0], ips(1)[0]
        items.append(
            {
                "text": f"Best regards,\nJane Doe\nMail: {e}\nPhone: {p}\nLast login from {ip}.",
                "pii": [
                    {"type": "email", "value": e},
                    {"type": "phone", "value": p},
                    {"type": "ip", "value": ip},
                ],
            }
        )
    return items


NEGATIVES = [
    "The meeting is on 2024-01-15 at 10:30 in room 4.12.",
    "Datum: 15.01.2024, Uhrzeit 14:45:30.",
    "Invoice dated 01/15/2024, due 02/14/2024.",
    "In 1969 the population was 3,631,000 and by 2019 it reached 7,713,468,100.",
    "The price is $1,299.99 (was $1,499.00), or €45,00 in Europe.",
    "Upgrade to Python 3.11.2 or numpy 1.26.4; Windows build 10.0.19041.",
    "ISBN 978-3-16-148410-0 and ISBN-10 0-306-40615-2 are both in the catalogue.",
    "Order number 1234567890123456 was shipped (tracking 9400 1000 0000 0000 0000 00).",
    "Commit 3f786850e387550fdab836ed7e6dc881de23001b fixed the bug.",
    "Request id 123e4567-e89b-12d3-a456-426614174000 timed out after 30.5 s.",
    "The final score was 3-1 after extra time; attendance 45,000.",
    "Coordinates: 48.8566, 2.3522 (Paris); elevation 35 m.",
    "Set the MAC address to 00:1A:2B:3C:4D:5E and the MTU to 1500.",
    "Chapter 12, section 4.3.2, page 117 of volume 2.",
    "Temperature rose from -5.5 to 12.25 degrees between 06:00 and 18:00.",
    "The ZIP code 90210 and postal code 10115 Berlin.",
    "Account ID 1234-5678 and PIN 4321 are not secrets in this demo.",
    "Population grew by 12.5% from 2001 to 2011.",
    "Version string v2.4.1-rc3 was tagged on 2023/07/04.",
    "See RFC 2616 section 14.9 and RFC 7231.",
    "Serial number SN-2023-000145-B printed on the label.",
    "The ratio was 16:9 and the resolution 1920x1080 at 60 Hz.",
    "Lottery numbers drawn: 4 8 15 16 23 42.",
    "Gross revenue of 1 234 567 EUR in fiscal year 2022/23.",
    "Flight LH 400 departs at 13:05 from gate B22.",
    "Einwohner: 3 645 000 (Stand 31.12.2019).",
    "The vector was (0.125, 0.250, 0.500) in the test.",
    "Route 66 runs 2,448 miles from Chicago to Santa Monica.",
    "Table 3 lists 1.5e-3 and 2.7e+8 as the bounds.",
    "The patch 1.2.3 updates 4 files and 5 tests.",
    "Use port 8080, or 443 for TLS, with a timeout of 300 seconds.",
    "Patent US 7,654,321 B2 was granted in 2010.",
    "Product code 4006381333931 (EAN-13) on the box.",
    "Bus line 123 456 stops at the station.",
    "The year range 1990-2000 and the pages 100-150.",
    "He scored 98.6 on the test, 100 being the maximum.",
    "Call stack depth 1024, heap 65536 bytes, 3 threads.",
    "SHA-256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Build 20230915.1 passed 1,024 of 1,030 tests.",
    "Grid reference 51.5074 N, 0.1278 W.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    items = positives() + [{"text": t, "pii": []} for t in NEGATIVES]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(items)} items")


if __name__ == "__main__":
    main()
