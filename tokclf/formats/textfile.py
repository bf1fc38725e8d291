"""The text layer under every format: what a path may be, bytes → lines, JSON rows, document ids.

One rule for each, so that every format reads files alike:
  path         a file, or a compressed file (.gz, .bz2, .xz; .zst with the `zstandard` package), read
               transparently as `datasets` does; a folder or a missing path is one clear error.
  lines        UTF-8; a line ends in \\n or \\r\\n; a byte-order mark at the start of any line is dropped
               (Windows tools write one, `cat a b` leaves one at each join: it is never part of a word, a
               tag, a column name or a JSON row). A line that is not UTF-8 stops with its line, column and
               byte offset. A file of nothing but BOMs and whitespace is empty.
  JSON rows    one parser, one message style for JSON Lines rows and whole JSON documents.
  documents    `doc_id` or `document_id`, a string or a number, never a boolean (DOCUMENT_KEYS).
Nothing here knows a format; the formats build on it.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import hashlib
import json
import lzma
from pathlib import Path
from typing import IO, Any, Iterator, Optional

from tokclf.errors import DataError

BOM = "\ufeff"
BOM_BYTES = BOM.encode()
UTF8_FIX = "Convert the file, e.g. `iconv -f latin1 -t utf-8`."
DOCUMENT_KEYS = ("doc_id", "document_id")


def _open_zstd(path: Path) -> IO[bytes]:
    try:
        import zstandard  # optional: only .zst files need it
    except ImportError:
        raise DataError(f"{path}: a Zstandard-compressed file, and the `zstandard` package is not installed. "
                        f"Install it (pip install zstandard), or decompress the file (zstd -d).") from None
    return zstandard.open(path, "rb")


COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zst": _open_zstd}


def logical_suffix(path: Path) -> str:
    """The suffix that names the content: `.jsonl` for train.jsonl.gz, `` for eng.train.gz."""
    path = Path(path)
    return Path(path.stem).suffix if path.suffix in COMPRESSIONS else path.suffix


def check_file(path: Path, what: str = "") -> None:
    """A DataError unless path is a file; `what` (e.g. ` Check --input.`) is added to the message."""
    path = Path(path)
    if path.is_dir():
        shown = ", ".join(sorted(p.name for p in path.iterdir())[:5]) or "nothing"
        raise DataError(f"{path}: a folder, not a file (it holds {shown}). Name a file in it.{what}")
    if not path.is_file():
        raise DataError(f"{path}: no such file.{what}")


@contextlib.contextmanager
def open_bytes(path: Path, what: str = "") -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when its suffix says it is compressed."""
    path = Path(path)
    check_file(path, what)
    opener = COMPRESSIONS.get(path.suffix)
    try:
        with (opener(path) if opener else path.open("rb")) as f:
            yield f
    except (OSError, EOFError, lzma.LZMAError) as err:
        if opener is None:
            raise
        raise DataError(f"{path}: cannot decompress it ({type(err).__name__}: {err}). Is it really "
                        f"{path.suffix}-compressed?") from None


def raw_lines(path: Path, what: str = "", allow_empty: bool = False) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset of the line, its bytes without \\n), streamed. Unless `allow_empty`, a file
    of nothing but BOMs and whitespace is an error, raised at its end (it yields no record before it)."""
    content, offset = False, 0
    with open_bytes(path, what) as f:
        for line_no, line in enumerate(f, start=1):
            start, offset = offset, offset + len(line)
            line = line[:-1] if line.endswith(b"\n") else line
            content = content or bool(line.replace(BOM_BYTES, b"").strip())
            yield line_no, start, line
    if not content and not allow_empty:
        raise DataError(f"{path}: the file is empty.")


def decode_line(path: Path, line_no: int, offset: int, line: bytes) -> str:
    """A line's text: UTF-8, without a final \\r, a BOM at its start dropped."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        column = len(line[:err.start].decode("utf-8", errors="replace")) + 1
        raise DataError(f"{path}:{line_no}: not UTF-8 (byte {line[err.start]:#x} at column {column}, byte offset "
                        f"{offset + err.start} of the file). {UTF8_FIX}") from None
    text = text[:-1] if text.endswith("\r") else text
    return text.lstrip(BOM) if text.startswith(BOM) else text


def numbered_lines(path: Path, what: str = "", allow_empty: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of the file, streamed."""
    for line_no, offset, line in raw_lines(path, what, allow_empty):
        yield line_no, decode_line(path, line_no, offset, line)


def text_lines(path: Path, what: str = "", allow_empty: bool = False) -> Iterator[str]:
    """The text of every line of the file, streamed."""
    return (text for _, text in numbered_lines(path, what, allow_empty))


def whole_text(path: Path, what: str = "") -> str:
    """The file as one string of its lines joined by \\n: for formats that are one JSON document."""
    return "\n".join(text_lines(path, what))


# ----------------------------------------------------------------------------------------------------
# JSON


def json_value(text: str, path: Path, line_no: int = 1, fix: str = "") -> Any:
    """The JSON value of text (a line of the file at line_no, or the whole file); one message style."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{line_no + err.lineno - 1}: not valid JSON ({err.msg} at column {err.colno})."
                        f"{' ' + fix if fix else ''}") from None


def json_object(line: str, path: Path, line_no: int) -> dict:
    """The object of one JSON Lines row."""
    row = json_value(line, path, line_no, "A JSON Lines file holds one JSON object per line.")
    if not isinstance(row, dict):
        raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}.")
    return row


def json_rows(path: Path, what: str = "") -> Iterator[tuple[int, dict]]:
    """(line number, object) of every non-blank line of a JSON Lines file, streamed."""
    for line_no, line in numbered_lines(path, what):
        if line.strip():
            yield line_no, json_object(line, path, line_no)


def first_json_row(path: Path) -> Optional[dict]:
    """The first object of a JSON list or JSON Lines file, reading no more lines than it spans (a Label
    Studio export of eng.train is 20 MB); None when the file does not start with one. Several formats
    sniff the same file: it is read once per version of the file."""
    stat = Path(path).stat()
    return _first_json_row(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _first_json_row(path: str, mtime_ns: int, size: int, max_lines: int = 10_000) -> Optional[dict]:
    decoder, buffer = json.JSONDecoder(), ""
    for count, line in enumerate(text_lines(Path(path), allow_empty=True)):
        buffer += line + "\n"
        text = buffer.lstrip()
        text = text[1:].lstrip() if text.startswith("[") else text
        if not text:
            continue
        try:
            row, _ = decoder.raw_decode(text)
        except json.JSONDecodeError:
            if count >= max_lines:
                return None
            continue
        return row if isinstance(row, dict) else None
    return None


# ----------------------------------------------------------------------------------------------------
# Documents


def document_id(row: dict, where: str) -> Optional[int]:
    """The document a row belongs to, as an int (only equality matters: --context_sentences keeps to a
    document): `doc_id` or `document_id`, a number (kept when whole) or a string (a stable 62-bit hash).
    None when the row has neither; a boolean or any other value is a DataError."""
    key = next((k for k in DOCUMENT_KEYS if k in row), None)
    value = row.get(key) if key else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"{where}: {key} must be a string or a number, got {json.dumps(value)}.")
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    digest = hashlib.blake2b(f"{type(value).__name__}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2
