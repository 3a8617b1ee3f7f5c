"""What a person may upload as evidence for a control, and the checks it passes first.

Evidence names its control, has a title and a description, and carries either a link or a
small document, never both. A link must be an absolute ``http``/``https`` URL without
credentials; it is recorded, never fetched (so it cannot be used to make this server call
anything). A document is base64 in the JSON body, at most :data:`MAX_DOCUMENT` bytes once
decoded, of a content type in :data:`CONTENT_TYPES`, and its bytes must look like that type
(the signature of a binary type, UTF-8 text for the others, and parsing for JSON).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agentwatch.api.text_rules import printable_name, printable_title

MAX_DOCUMENT = 256 * 1024
MAX_BODY = 512 * 1024  # the base64 of the largest document and the other fields
ContentType = Literal[
    "application/pdf", "text/plain", "text/markdown", "text/csv", "application/json", "image/png", "image/jpeg"
]
CONTENT_TYPES: tuple[str, ...] = ContentType.__args__  # type: ignore[attr-defined]
SIGNATURES = {"application/pdf": b"%PDF-", "image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _link(value: str) -> str:
    # isprintable() refuses controls (C0 and C1), every blank but the space, format characters
    # (zero-width, bidi overrides) and line separators: a link shows what it leads to
    if " " in value or not value.isprintable():
        raise ValueError("must not contain spaces, control, invisible or direction-changing characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError("must be a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    return value


Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(printable_title)]
FileName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(printable_name)]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: FileName = Field(description="the document's file name, shown to people (it names no path here)")
    content_type: ContentType
    data: str = Field(min_length=1, max_length=(MAX_DOCUMENT + 2) // 3 * 4, description="the bytes, base64")


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    control_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    framework: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: Title
    description: Annotated[str, Field(max_length=4000), AfterValidator(_no_nul)] = ""
    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_link)] | None = None
    document: DocumentIn | None = None

    @model_validator(mode="after")
    def _one_of(self) -> EvidenceIn:
        if (self.url is None) == (self.document is None):
            raise ValueError("give either url or document (exactly one)")
        return self


@dataclass(frozen=True)
class Document:
    name: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def decode_document(doc: DocumentIn) -> Document:
    """The document's bytes, checked; raises ValueError("field: rule")."""
    try:
        data = base64.b64decode(doc.data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("document.data: must be standard base64") from None
    if not data:
        raise ValueError("document.data: must not be empty")
    if len(data) > MAX_DOCUMENT:
        raise ValueError(f"document.data: larger than {MAX_DOCUMENT} bytes once decoded")
    signature = SIGNATURES.get(doc.content_type)
    if signature is not None and not data.startswith(signature):
        raise ValueError(f"document.data: is not a {doc.content_type} document")
    if signature is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"document.data: {doc.content_type} must be UTF-8 text") from None
        if "\x00" in text:
            raise ValueError("document.data: text must not contain NUL characters")
        if doc.content_type == "application/json":
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError:
                raise ValueError("document.data: is not a application/json document (it does not parse)") from None
    return Document(doc.name, doc.content_type, data)
