"""Resident identity numbers (GB 11643, domain.md §1) and full-width text.

Pure functions: used in the Spark executors, by the sample generator and by the tests.
"""

from __future__ import annotations

import re

# domain.md §1: ISO 7064 MOD 11-2 weights for positions 1..17 and check characters for r=0..10
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_DIGITS = re.compile(r"[0-9]+")

# Full-width ASCII block U+FF01..U+FF5E maps onto U+0021..U+007E; U+3000 is the ideographic space.
FULLWIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
HALFWIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
_FW_TABLE = str.maketrans(FULLWIDTH, HALFWIDTH)


def to_halfwidth(text: str) -> str:
    """Full-width digits, letters and punctuation to their ASCII forms."""
    return text.translate(_FW_TABLE)


def normalize_id_no(raw: str | None) -> str | None:
    """Strip blanks, full-width to half-width, `x` to `X` (domain.md §1); None when empty."""
    if raw is None:
        return None
    s = "".join(to_halfwidth(raw).split()).upper()
    return s or None


def id_check_char(first17: str) -> str:
    """GB 11643 check character of the first 17 digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS)) % 11]


def upgrade_15(id15: str) -> str:
    """Legacy 15-digit number to the 18-digit form: insert `19` after position 6, add the check."""
    body = id15[:6] + "19" + id15[6:]
    return body + id_check_char(body)


def _ascii_digits(s: str) -> bool:
    """Digits 0-9 only: str.isdigit() also accepts other scripts' digits and superscripts."""
    return bool(_DIGITS.fullmatch(s))


def valid_id_no(id_no: str | None) -> bool:
    """True for an 18-character resident identity number with a correct check character."""
    if not id_no or len(id_no) != 18 or not _ascii_digits(id_no[:17]):
        return False
    return id_no[17] == id_check_char(id_no[:17])


def canonical_id_no(raw: str | None) -> str | None:
    """The 18-character form when `raw` is a valid 18- or 15-digit number, else None."""
    s = normalize_id_no(raw)
    if s and len(s) == 15 and _ascii_digits(s):
        s = upgrade_15(s)
    return s if valid_id_no(s) else None


def id_birth_date(id18: str) -> str:
    """Birth date `YYYY-MM-DD` written inside an 18-character number."""
    return f"{id18[6:10]}-{id18[10:12]}-{id18[12:14]}"


def id_sex_code(id18: str) -> str:
    """GB/T 2261.1 sex code implied by the 17th digit: odd men (1), even women (2)."""
    return "1" if int(id18[16]) % 2 else "2"
