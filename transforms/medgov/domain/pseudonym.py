"""Keyed pseudonyms (domain.md §4: keyed one-way hash) and the key they are keyed with.

The key comes from the environment or a file outside the repository and the lake; it is
shipped to the executors with the task closure and never written or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from medgov.domain.identity import canonical_id_no, id_birth_date, id_sex_code
from medgov.errors import MedgovError


def pseudonym(key: bytes, kind: str, *parts: str) -> str:
    """HMAC-SHA256 of `kind|part|…` (domain.md §4: keyed one-way hash), hex, 32 chars."""
    msg = "|".join((kind, *parts)).encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def linkable_id_no(id_type: str | None, id_no: str | None, birth_date: str | None = None,
                   sex_code: str | None = None) -> str | None:
    """The canonical resident identity number when it may link this record to others: valid,
    and agreeing with the record's birth date and sex where those are known (a newborn
    registered under a parent's number must not become the parent)."""
    canonical = canonical_id_no(id_no) if (id_type in (None, "", "01")) else None
    if canonical is None:
        return None
    if birth_date and id_birth_date(canonical) != str(birth_date)[:10]:
        return None
    if sex_code in ("1", "2") and id_sex_code(canonical) != sex_code:
        return None
    return canonical


def person_key(key: bytes, org_code: str, patient_id: str, id_type: str | None, id_no: str | None,
               birth_date: str | None = None, sex_code: str | None = None) -> str:
    """The person pseudonym: from the resident identity number when it may link the record
    (the linkage key across institutions, spec §3; see `linkable_id_no`), otherwise from
    org + the local patient number."""
    canonical = linkable_id_no(id_type, id_no, birth_date, sex_code)
    if canonical:
        return pseudonym(key, "ID", canonical)
    return pseudonym(key, "LOCAL", org_code, patient_id)


def load_key() -> bytes:
    """The pseudonym key from MEDGOV_PSEUDONYM_KEY or the file named by MEDGOV_PSEUDONYM_KEY_FILE."""
    value = os.environ.get("MEDGOV_PSEUDONYM_KEY")
    path = os.environ.get("MEDGOV_PSEUDONYM_KEY_FILE")
    if not value and path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MedgovError(f"cannot read the pseudonym key file {path}: {exc.strerror}") from None
    if not value:
        raise MedgovError(
            "no pseudonym key: set MEDGOV_PSEUDONYM_KEY or MEDGOV_PSEUDONYM_KEY_FILE "
            "(a secret held outside the repository and the lake)"
        )
    if len(value) < 16:
        raise MedgovError("the pseudonym key is too short: use at least 16 characters (32 random bytes recommended)")
    return value.encode("utf-8")


def key_fingerprint(key: bytes) -> str:
    """A short, non-reversible key version tag recorded with the data (never the key)."""
    return hashlib.sha256(b"medgov-key-version|" + key).hexdigest()[:8]
