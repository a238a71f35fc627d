"""The e-mail on the wire: headers and a `multipart/alternative` body, assembled once as bytes.

A digest with its list attached is `multipart/mixed`: that alternative, then the file (`mixed`).

The standard library's modern `email` policy folds headers (Arabic display names and subjects)
in pure Python at several milliseconds per e-mail, which made composing and flattening the
notifier's bottleneck. The message here is small and always has the same shape, so it is
written directly, with the same rules the library follows:

- every header is one logical line; anything that is not printable ASCII (Arabic, the em dash,
  and any CR, LF or other control character that would end the line) is carried in RFC 2047
  encoded words (`=?utf-8?b?…?=`), so no value can ever start a header of its own;
- lines are folded at whitespace to 78 characters, each encoded word being at most 75;
- each part is UTF-8, `7bit` when it is short-lined ASCII and `base64` otherwise, with its line
  breaks normalised to LF as `EmailMessage.set_content` does, so it decodes to the same text.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

LINE_MAX: Final = 78  # RFC 5322's recommended line length, as the `email` package folds
# An encoded word is at most 75 characters: `=?utf-8?b?` (10) + base64 + `?=` (2) leaves 63,
# i.e. 60 base64 characters for 45 bytes of UTF-8.
_WORD_BYTES: Final = 45
_CRLF: Final = "\r\n"
_BASE64_LINE: Final = 76
# atext (RFC 5322 §3.2.3): what a display-name word may hold without quoting.
_ATEXT: Final = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
# A mailbox we can put in a header and an SMTP command as it is: no spaces, controls,
# brackets, quotes or separators that would end it early; exactly one `@`.
_ADDR_CHAR: Final = r"[^\s\x00-\x1f\x7f<>()\[\]\\,;:@\"]"
_ADDR_SPEC: Final = re.compile(rf"{_ADDR_CHAR}+@{_ADDR_CHAR}+")
# Bytes a `7bit` line may not carry (RFC 2045 §2.7): controls other than TAB, DEL, 8-bit bytes.
_NOT_7BIT: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f-\xff]")
# An attachment's file name, written into its headers as it is.
_FILENAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


def encoded_word(text: str) -> str:
    """Return `text` as one RFC 2047 UTF-8 base64 encoded word, however long."""
    return f"=?utf-8?b?{binascii.b2a_base64(text.encode('utf-8'), newline=False).decode()}?="


def encoded_words(text: str) -> list[str]:
    """Return `text` as RFC 2047 UTF-8 base64 encoded words, each at most 75 characters.

    Words are cut between characters, never inside one, so each decodes on its own; a reader
    joins adjacent encoded words without the whitespace between them.
    """
    data = text.encode("utf-8")
    words = []
    start, size = 0, len(data)
    while start < size:
        end = min(start + _WORD_BYTES, size)
        while end < size and data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            end -= 1
        chunk = binascii.b2a_base64(data[start:end], newline=False).decode("ascii")
        words.append(f"=?utf-8?b?{chunk}?=")
        start = end
    return words


def _plain(word: str) -> bool:
    # Printable ASCII only (no CR/LF, no controls), and nothing a reader would decode.
    return word.isascii() and word.isprintable() and "=?" not in word


def unstructured_tokens(value: str) -> list[str]:
    """Return the whitespace-separated tokens of an unstructured header value (RFC 5322).

    Printable ASCII words stay readable; each run of other words becomes encoded words (the
    spaces inside a run travel encoded, since a reader ignores the space between two encoded
    words). A value with leading, trailing or repeated spaces is encoded whole, so that it
    decodes exactly.
    """
    words = value.split(" ")
    if not all(words):
        return encoded_words(value)
    tokens: list[str] = []
    run: list[str] = []
    for word in words:
        if _plain(word):
            if run:
                tokens += encoded_words(" ".join(run))
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens += encoded_words(" ".join(run))
    return tokens


def display_name_tokens(name: str) -> list[str]:
    """Return a display name as atoms, one quoted string, or one encoded word (RFC 5322/2047).

    One encoded word, however long, as `email.utils.formataddr` writes it: between two
    encoded words in a display name, Python's parser keeps the whitespace that RFC 2047 and
    mail clients drop, so a name cut in two would not read the same everywhere.
    """
    if "=?" in name:  # a reader would decode it, even inside quotes
        return [encoded_word(name)]
    words = name.split(" ")
    if all(_ATEXT.fullmatch(word) for word in words):
        return words
    if name.isascii() and name.isprintable():
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return [encoded_word(name)]


def valid_addr_spec(addr_spec: str) -> bool:
    """Return whether `addr_spec` can go into a header and an SMTP command as it is."""
    return _ADDR_SPEC.fullmatch(addr_spec) is not None


def mailbox_tokens(display_name: str, addr_spec: str) -> list[str]:
    """Return `Name <addr>` as header tokens; raise ValueError for an unusable address.

    A CR or LF in the display name is refused too, as `email.headerregistry.Address` does.
    """
    if not valid_addr_spec(addr_spec):
        msg = "not a usable e-mail address"  # the address itself is left out of logs
        raise ValueError(msg)
    if "\r" in display_name or "\n" in display_name:
        msg = "invalid arguments; address parts cannot contain CR or LF"
        raise ValueError(msg)
    if not display_name:
        return [addr_spec]
    return [*display_name_tokens(display_name), f"<{addr_spec}>"]


def header(name: str, tokens: Iterable[str]) -> str:
    """Return the header `name` with `tokens`, folded at whitespace, ending in CRLF.

    The tokens are the caller's safe pieces (from the functions above): the only line breaks
    in the result are folds, each followed by a space. The first token stays on the first line
    (a fold right after the colon would read as a leading space in an unstructured value).
    """
    lines: list[str] = []
    line = name + ":"
    first = True
    for token in tokens:
        if not first and len(line) + 1 + len(token) > LINE_MAX:
            lines.append(line)
            line = ""
        line += " " + token
        first = False
    lines.append(line)
    return _CRLF.join(lines) + _CRLF


def _part(subtype: str, text: str, *boundaries: bytes) -> bytes:
    data = text.encode("utf-8")
    # LF line breaks and a final one, as EmailMessage.set_content normalises the text.
    lines = data.splitlines()
    seven_bit = (
        max(map(len, lines), default=0) <= LINE_MAX
        and not any(_NOT_7BIT.search(line) for line in lines)
        and not any(b"--" + boundary in data for boundary in boundaries)
    )
    if seven_bit:
        cte, body = "7bit", b"\r\n".join(lines) + b"\r\n"
    else:
        cte, body = "base64", _base64_lines(b"\n".join(lines) + b"\n")
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
    return head.encode("ascii") + b"\r\n" + body


def _base64_lines(data: bytes) -> bytes:
    # 76-character lines (RFC 2045), as `base64.encodebytes` but without its per-line loop.
    encoded = binascii.b2a_base64(data, newline=False)
    width = _BASE64_LINE
    return b"".join([encoded[i : i + width] + b"\r\n" for i in range(0, len(encoded), width)])


def alternative(headers: Iterable[str], text: str, html: str, boundary: str) -> bytes:
    """Return the whole message: `headers`, then a text and an HTML part, CRLF line breaks.

    `boundary` must be a valid MIME boundary (RFC 2046). A delimiter line starts with `--`,
    which base64 never contains; a `7bit` part that contains it is sent as base64 instead.
    """
    mark = boundary.encode("ascii")
    head = "".join(headers) + (
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
    )
    # Headers are ASCII except an internationalised address, which needs SMTPUTF8 anyway.
    return head.encode("utf-8") + _alternative_body(text, html, mark)


def _alternative_body(text: str, html: str, mark: bytes, *outer: bytes) -> bytes:
    # From the first delimiter to the close delimiter; `outer`: enclosing boundaries a `7bit`
    # part must not contain either.
    return b"".join(
        (
            b"\r\n--%s\r\n" % mark,
            _part("plain", text, mark, *outer),
            b"\r\n--%s\r\n" % mark,
            _part("html", html, mark, *outer),
            b"\r\n--%s--\r\n" % mark,
        )
    )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached as it is: sent base64, so its bytes (a BOM, CRLF rows) arrive unchanged."""

    filename: str
    """ASCII letters, digits, `-`, `_` and `.` only: it goes into the headers as it is."""
    content_type: str
    """The full type with its parameters, e.g. `text/csv; charset=utf-8`."""
    data: bytes

    def __post_init__(self) -> None:
        if not _FILENAME.fullmatch(self.filename):
            msg = "an attachment's file name must be plain ASCII ([A-Za-z0-9._-])"
            raise ValueError(msg)


def mixed(
    headers: Iterable[str],
    text: str,
    html: str,
    attachment: Attachment,
    boundary: str,
    alternative_boundary: str,
) -> bytes:
    """Return the whole message: `multipart/mixed` of the text and HTML alternative, then a file.

    The two boundaries must be valid and neither a prefix of the other (a reader may take a
    delimiter line that starts with the outer boundary for the outer one).
    """
    if boundary.startswith(alternative_boundary) or alternative_boundary.startswith(boundary):
        msg = "one boundary is a prefix of the other"
        raise ValueError(msg)
    mark, inner = boundary.encode("ascii"), alternative_boundary.encode("ascii")
    head = "".join(headers) + (
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary="{boundary}"\r\n'
    )
    file_head = (
        f'Content-Type: {attachment.content_type};\r\n name="{attachment.filename}"\r\n'
        f'Content-Disposition: attachment;\r\n filename="{attachment.filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
    )
    return b"".join(
        (
            head.encode("utf-8"),
            b"\r\n--%s\r\n" % mark,
            b'Content-Type: multipart/alternative;\r\n boundary="%s"\r\n' % inner,
            _alternative_body(text, html, inner, mark),
            b"\r\n--%s\r\n" % mark,
            file_head.encode("ascii") + b"\r\n" + _base64_lines(attachment.data),
            b"\r\n--%s--\r\n" % mark,
        )
    )
