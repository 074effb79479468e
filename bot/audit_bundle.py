"""Audit bundles as files: gathering a conversation from the store, the zip's bytes, and
reading a zip back (`domain.audit_bundle` says what a bundle holds and how it verifies).

The zip is deterministic: entries sorted by name, every timestamp 1980-01-01 00:00 (the
zip format's earliest), the same permissions and compression for every entry, no comment
and no extra fields. So the same stored conversation gives the same bytes on this install
(a different zlib build may compress differently; the manifest's hashes, which are over
the files' contents, stay the same everywhere).
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from bot import schemas
from domain.audit_bundle import (
    MANIFEST,
    BundleError,
    BundleManifest,
    bundle_files,
    read_manifest,
)
from domain.chain import policy_version_of
from storage.ports import Store

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 9
MAX_BUNDLE_BYTES = 1 << 30
"""What a bundle may unpack to (1 GiB): a bigger one is refused before it is read."""


async def build_bundle(store: Store, conversation_id: str) -> tuple[bytes, BundleManifest]:
    """The bundle of one conversation, as zip bytes, and its manifest."""
    stored = await store.stored_events(conversation_id)
    inbounds = await store.inbounds(conversation_id)
    versions = {row.policy_version for row in inbounds}
    for event in stored:
        recorded = policy_version_of(event.envelope)
        if recorded is not None:
            versions.add(recorded)
    policies: dict[str, str] = {}
    for version in sorted(versions):
        text = await store.get_policy(version)
        if text is not None:  # one missing is reported by `salesbot verify`, not hidden
            policies[version] = text
    files = bundle_files(
        conversation_id,
        stored,
        [row.model_dump_json() for row in inbounds],
        policies,
        schemas.export_texts(),
        {artifact.name: artifact.schema_version for artifact in schemas.ARTIFACTS},
    )
    return zip_bytes(files), read_manifest(files)


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """The files as a deterministic zip (see the module docstring)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permission bits below mean what they say
            info.external_attr = 0o100644 << 16
            archive.writestr(info, files[name], compresslevel=ZIP_LEVEL)
    return buffer.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (a temporary file renamed over it)."""
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_zip(path: Path) -> dict[str, bytes]:
    """Every file of the zip at `path`, by name. `BundleError` for anything that is not a
    readable zip (missing, a directory, damaged, too big, a name twice)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [info for info in archive.infolist() if not info.is_dir()]
            if sum(info.file_size for info in entries) > MAX_BUNDLE_BYTES:
                raise BundleError(f"it unpacks to more than {MAX_BUNDLE_BYTES >> 20} MiB")
            files: dict[str, bytes] = {}
            for info in entries:
                if info.filename in files:
                    raise BundleError(f"it holds two files named {info.filename}")
                files[info.filename] = archive.read(info)
    except FileNotFoundError:
        raise BundleError("there is no such file") from None
    except IsADirectoryError:
        raise BundleError("it is a directory") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise BundleError(f"it is not a readable zip file ({exc})") from None
    except (OSError, NotImplementedError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise BundleError(f"it cannot be read ({reason})") from None
    if MANIFEST not in files:
        raise BundleError(f"it holds no {MANIFEST}")
    return files
