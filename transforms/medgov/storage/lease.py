"""A stage lock on an S3-compatible object store: a lease object written with conditional PUTs.

The holder creates `<lake>/_locks/<stage>.lock` only if it does not exist (`If-None-Match: *`)
and renews it while it works, each renewal a new body written only over its own last one
(`If-Match`: the ETag it holds). Nothing is ever released by a clock on the holder's machine:
a waiter judges a lease stale by the store's own clock (the object's `Last-Modified` against
the `Date` of the same response), and takes it over with `If-Match` on the stale ETag, so of
two waiters only one wins. A killed holder therefore blocks the stage for one lease at most
(`MEDGOV_LOCK_LEASE`, 120 s by default) instead of forever. Needs a store with conditional
writes (AWS S3 since 2024, MinIO, Ceph RGW, moto); the endpoint and credentials come from
the environment as for the tables (`AWS_ENDPOINT_URL`, …).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator

from medgov.errors import MedgovError

DEFAULT_LEASE_SECONDS = 120.0
POLL_SECONDS = 0.5
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def _client() -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None)


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class _Lease:
    """One holder's lease on one object: acquire, renew on a thread, release."""

    def __init__(self, bucket: str, key: str, seconds: float) -> None:
        self.s3, self.bucket, self.key, self.seconds = _client(), bucket, key, seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.etag: str | None = None
        self.renewals = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        # a new body per renewal: an unchanged one keeps its ETag, and a waiter's takeover
        # conditioned on the stale ETag would then succeed over a live holder
        self.renewals += 1
        return json.dumps({"owner": self.owner, "renewal": self.renewals, "lease_seconds": self.seconds}).encode()

    def _put(self, **condition: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            reply = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(),
                                       ContentType="application/json", **condition)
        except ClientError as exc:
            if _code(exc) in _CONFLICT:
                return False
            raise
        self.etag = reply["ETag"]
        return True

    def stale_etag(self) -> str | None:
        """The ETag of a lease its holder stopped renewing (None while it is live or gone)."""
        from botocore.exceptions import ClientError

        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        server_now = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"])
        try:
            seconds = float(json.loads(self.s3.get_object(Bucket=self.bucket, Key=self.key, IfMatch=head["ETag"])
                                       ["Body"].read())["lease_seconds"])
        except (ClientError, ValueError, KeyError, TypeError):
            return None  # renewed or released since the HEAD, or not a lease: look again
        # Last-Modified has whole seconds: one more second keeps a just-renewed lease live
        age = (server_now - head["LastModified"]).total_seconds()
        return head["ETag"] if age > seconds + 1 else None

    def acquire(self, timeout: float, progress: Callable[[str], None], what: str) -> None:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            if self._put(IfNoneMatch="*"):
                break
            stale = self.stale_etag()
            if stale and self._put(IfMatch=stale):
                progress(f"{what}: took over a lock whose holder stopped renewing it")
                break
            if not waiting:
                progress(f"{what}: waiting for another run of this stage to finish")
                waiting = True
            if time.monotonic() > deadline:
                raise MedgovError(f"another run held the {what} lock (s3://{self.bucket}/{self.key}) for over "
                                  f"{timeout:.0f} s (MEDGOV_LOCK_TIMEOUT)")
            time.sleep(POLL_SECONDS)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{what}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self._put(IfMatch=self.etag or ""):
                    self.lost = True  # taken over: this holder stalled past its lease
                    return
            except Exception:  # a failed renewal is retried; the lease outlives two misses
                continue

    def release(self) -> None:
        from botocore.exceptions import ClientError

        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.lost or self.etag is None:
            return
        try:  # only our own lease: a takeover's object has another ETag
            self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except ClientError as exc:
            if _code(exc) not in (*_CONFLICT, "404", "NoSuchKey"):
                raise


@contextmanager
def lease_lock(uri: str, what: str, timeout: float, progress: Callable[[str], None] = lambda m: None
               ) -> Iterator[None]:
    """Hold the lease object at `uri` (s3://bucket/key) while the block runs."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    lease = _Lease(bucket, key, float(os.environ.get("MEDGOV_LOCK_LEASE", DEFAULT_LEASE_SECONDS)))
    lease.acquire(timeout, progress, what)
    try:
        yield
    finally:
        lease.release()
        if lease.lost:
            progress(f"{what}: this run's lock lapsed while it worked and another run took it over "
                     "(MEDGOV_LOCK_LEASE is shorter than a stall); its commits stand, as Delta's do")
