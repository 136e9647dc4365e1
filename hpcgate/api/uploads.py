"""Receiving a multipart/form-data upload of input files, with the limits checked as it streams.

Why not Starlette's ``request.form()``: it accepts any file size (spooled to disk) and checks
nothing until the whole body is in. Here every file part is written to a private temporary
directory and hashed (sha256) chunk by chunk, and the limits of ``settings.inputs`` are
applied while the bytes arrive:

* a ``Content-Length`` above the request limit is refused before a byte is read;
* a body that grows past it anyway (chunked, or a lying length) is cut off at once;
* any other refusal (one file too large, a bad file name, an unknown field) stops writing
  to disk, reads the rest of the body (bounded by the request limit) and only then
  answers, so clients that send the whole body before reading get the 413/422 cleanly.

Nothing reaches the database from here: the route stores the spooled files, in one
transaction with whatever refers to them, only once the whole upload was accepted.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from hpcgate.codes.plugin import check_input_name
from hpcgate.errors import HpcgateError, InvalidInput, TooLarge
from hpcgate.settings import Settings

_FLUSH_BYTES = 1 << 20  # write spooled data in a worker thread, a MiB at a time


@dataclass
class SpooledFile:
    name: str
    path: Path
    size: int = 0
    sha256: str = ""

    def open(self) -> BinaryIO:
        return open(self.path, "rb")


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[SpooledFile] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def body_limit(settings: Settings) -> int:
    """The largest multipart body accepted: every file at its limit plus the form fields."""
    return settings.inputs.max_calculation_bytes + (settings.max_body_mb << 20)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


class _Receiver:
    """python-multipart callbacks that spool file parts and keep the first refusal."""

    def __init__(self, directory: Path, settings: Settings, fields: frozenset[str]) -> None:
        self.directory = directory
        self.limits = settings.inputs
        self.max_field = settings.max_body_mb << 20
        self.allowed_fields = fields
        self.upload = Upload()
        self.refusal: HpcgateError | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field: str | None = None
        self._field_data = bytearray()
        self._file: SpooledFile | None = None
        self._fh: BinaryIO | None = None
        self._digest = hashlib.sha256()
        # (file, bytes) to write; b"" closes the file. Written by flush() in a worker thread.
        self._pending: list[tuple[SpooledFile, bytes]] = []
        self._pending_bytes = 0
        self._total = 0

    # -- callbacks (called from parser.write, in the event loop: no I/O here)
    def on_part_begin(self) -> None:
        self._disposition = b""
        self._field = None
        self._field_data.clear()
        self._file = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        if self.refusal is not None:
            return
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        filename = options.get(b"filename")
        try:
            if filename is None:
                if name not in self.allowed_fields:
                    allowed = ", ".join(sorted(self.allowed_fields)) or "none"
                    raise InvalidInput(f"unknown form field {name!r} (fields: {allowed}; "
                                       "files are parts with a filename)")
                self._field = name
                return
            fname = check_input_name(filename.decode("utf-8", errors="replace"))
            if any(f.name == fname for f in self.upload.files):
                raise InvalidInput(f"file {fname!r} is uploaded twice in one request")
            if len(self.upload.files) >= self.limits.max_files:
                raise TooLarge(f"at most {self.limits.max_files} files per upload")
            spooled = SpooledFile(fname, self.directory / f"{len(self.upload.files):05d}")
            self.upload.files.append(spooled)
            self._file = spooled
        except HpcgateError as exc:
            self.refusal = exc

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.refusal is not None:
            return
        chunk = data[start:end]
        if self._file is not None:
            self._file.size += len(chunk)
            self._total += len(chunk)
            if self._file.size > self.limits.max_file_bytes:
                self.refusal = TooLarge(
                    f"file {self._file.name!r} is larger than the "
                    f"{_mib(self.limits.max_file_bytes)} allowed per input file",
                    limit_bytes=self.limits.max_file_bytes,
                )
            elif self._total > self.limits.max_calculation_bytes:
                self.refusal = TooLarge(
                    f"the uploaded files exceed the {_mib(self.limits.max_calculation_bytes)} "
                    "allowed per calculation",
                    limit_bytes=self.limits.max_calculation_bytes,
                )
            else:
                if chunk:
                    self._pending.append((self._file, chunk))
                    self._pending_bytes += len(chunk)
        elif self._field is not None:
            if len(self._field_data) + len(chunk) > self.max_field:
                self.refusal = TooLarge(
                    f"form field {self._field!r} is larger than {_mib(self.max_field)}"
                )
            else:
                self._field_data.extend(chunk)

    def on_part_end(self) -> None:
        if self.refusal is None and self._field is not None:
            try:
                self.upload.fields[self._field] = self._field_data.decode("utf-8")
            except UnicodeDecodeError:
                self.refusal = InvalidInput(f"form field {self._field!r} is not UTF-8 text")
        if self._file is not None:
            self._pending.append((self._file, b""))  # the end of this file
            self._file = None

    @property
    def wants_flush(self) -> bool:
        return self._pending_bytes >= _FLUSH_BYTES or any(not c for _, c in self._pending)

    # -- disk (in a worker thread)
    def flush(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for current, chunk in pending:
            if self.refusal is not None:
                break
            if self._fh is None:
                self._fh = open(current.path, "xb")  # noqa: SIM115 - closed at the part's end
                self._digest = hashlib.sha256()
            if chunk:
                self._fh.write(chunk)
                self._digest.update(chunk)
            else:
                self._fh.close()
                self._fh = None
                current.sha256 = self._digest.hexdigest()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@contextmanager
def _spool_dir(settings: Settings) -> Iterator[Path]:
    base = settings.paths.data_dir / "uploads"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="upload-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class ReceivedUpload:
    """An accepted upload; its spooled files vanish when the ``with`` block ends."""

    def __init__(self, request: Request, settings: Settings, fields: frozenset[str]) -> None:
        self.request = request
        self.settings = settings
        self.fields = fields

    async def __aenter__(self) -> Upload:
        self._cm = _spool_dir(self.settings)
        directory = self._cm.__enter__()
        try:
            return await _receive(self.request, self.settings, self.fields, directory)
        except BaseException:
            self._cm.__exit__(None, None, None)
            raise

    async def __aexit__(self, *exc: object) -> None:
        await anyio.to_thread.run_sync(self._cm.__exit__, None, None, None)


async def _receive(
    request: Request, settings: Settings, fields: frozenset[str], directory: Path
) -> Upload:
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidInput("send the files as multipart/form-data (curl -F name=@file)")
    limit = body_limit(settings)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge(
            f"the request body ({_mib(int(declared))}) exceeds the {_mib(limit)} an upload "
            f"may have ({_mib(settings.inputs.max_calculation_bytes)} of files per calculation)",
            limit_bytes=limit,
        )
    receiver = _Receiver(directory, settings, fields)
    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": receiver.on_part_begin,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(
                    f"the request body exceeds the {_mib(limit)} an upload may have",
                    limit_bytes=limit,
                )
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise InvalidInput(f"malformed multipart body: {exc}") from None
            if receiver.wants_flush:
                await anyio.to_thread.run_sync(receiver.flush)
        try:
            parser.finalize()
        except FormParserError as exc:
            raise InvalidInput(f"malformed multipart body: {exc}") from None
        await anyio.to_thread.run_sync(receiver.flush)
    finally:
        receiver.close()
    if receiver.refusal is not None:
        raise receiver.refusal
    if any(not f.sha256 for f in receiver.upload.files):
        raise InvalidInput("malformed multipart body: a file part was not terminated")
    return receiver.upload

