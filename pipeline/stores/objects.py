"""Frame blobs in an S3-compatible store, under keys derived from their content hash."""

from __future__ import annotations

import hashlib
import io
import logging
import re

from minio import Minio
from minio.error import S3Error

from pipeline.config import Settings

log = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ObjectStoreError(Exception):
    """An S3 operation failed; the message names the bucket, key and the store's error code."""


def frame_object_key(sha256_hex: str) -> str:
    """Return the object key of a frame blob.

    The key depends only on the content, so identical frames share one object and a redelivered
    frame overwrites its own object instead of adding another.
    """
    if not _SHA256_HEX.match(sha256_hex):
        raise ValueError(f"frame hash {sha256_hex!r} is not 64 lowercase hex characters")
    return f"frames/sha256/{sha256_hex[:2]}/{sha256_hex}"


def make_client(settings: Settings) -> Minio:
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key.reveal(),
        secret_key=settings.s3_secret_key.reveal(),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


class FrameObjectStore:
    """Puts and gets frame blobs. The bucket must exist: `spanline stack up` creates it locally."""

    def __init__(self, settings: Settings, client: Minio | None = None) -> None:
        self._bucket = settings.s3_bucket
        self._client = client or make_client(settings)

    @property
    def bucket(self) -> str:
        return self._bucket

    def check_bucket(self) -> None:
        """Raise ObjectStoreError if the bucket is missing or not accessible with these keys."""
        try:
            exists = self._client.bucket_exists(self._bucket)
        except S3Error as error:
            raise ObjectStoreError(
                f"cannot access bucket {self._bucket!r}: {error.code} ({error.message}); "
                "check SPANLINE_S3_ACCESS_KEY and SPANLINE_S3_SECRET_KEY"
            ) from error
        if not exists:
            raise ObjectStoreError(
                f"bucket {self._bucket!r} does not exist; create it or run `spanline stack up`"
            )

    def put_frame(self, data: bytes, sha256_hex: str, content_type: str) -> tuple[str, bool]:
        """Store a blob under its content key; return (key, True if it was already stored)."""
        key = frame_object_key(sha256_hex)
        if self._exists(key):
            return key, True
        try:
            self._client.put_object(
                self._bucket, key, io.BytesIO(data), length=len(data), content_type=content_type
            )
        except S3Error as error:
            raise ObjectStoreError(
                f"put of {self._bucket}/{key} failed: {error.code} ({error.message})"
            ) from error
        return key, False

    def get_frame(self, key: str) -> bytes:
        """Return a blob's bytes; raise ObjectStoreError if it is missing."""
        try:
            response = self._client.get_object(self._bucket, key)
        except S3Error as error:
            raise ObjectStoreError(
                f"get of {self._bucket}/{key} failed: {error.code} ({error.message})"
            ) from error
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def delete_frame(self, key: str) -> None:
        """Delete a blob; deleting a missing key is not an error (S3 semantics)."""
        try:
            self._client.remove_object(self._bucket, key)
        except S3Error as error:
            raise ObjectStoreError(
                f"delete of {self._bucket}/{key} failed: {error.code} ({error.message})"
            ) from error

    def _exists(self, key: str) -> bool:
        try:
            self._client.stat_object(self._bucket, key)
        except S3Error as error:
            if error.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
                return False
            raise ObjectStoreError(
                f"stat of {self._bucket}/{key} failed: {error.code} ({error.message})"
            ) from error
        return True


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
