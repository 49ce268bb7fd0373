"""What reading a Parquet file (its first rows, or all of it) costs, found in its page headers before anything is
decoded.

A Parquet file from a container is untrusted input, and its footer's sizes are only what the writer claims. The
page headers are what Arrow acts on: it allocates each page's `uncompressed_page_size` (and refuses a page that
decompresses to any other size), and decodes a dictionary page's `num_values` entries whole. So what a read of
the first rows will hold is the sum, over the pages it reads, of what their headers say, and a preview can be
decided from that sum before any byte is decompressed (`chunk_cost`). A whole read (`chunk_pages`) also copies a
dictionary entry into every row that names it, which its dictionary page's longest entry bounds
(`longest_entry`, the one page decoded here).

Page headers are Thrift compact structs (parquet-format's PageHeader); `_struct` reads just enough of that
encoding to find their sizes, skipping everything else, and never reads past the bytes it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeAlias

# Page types and encodings, as parquet-format numbers them.
DATA_PAGE, INDEX_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 1, 2, 3
PLAIN, PLAIN_DICTIONARY, RLE, BIT_PACKED, RLE_DICTIONARY, BYTE_STREAM_SPLIT = 0, 2, 3, 4, 8, 9
# Values Arrow decodes a batch at a time. The DELTA encodings are left out: their decoders size buffers from
# counts inside the (compressed) page, which no header shows.
BOUNDED_ENCODINGS = {PLAIN, PLAIN_DICTIONARY, RLE, BIT_PACKED, RLE_DICTIONARY, BYTE_STREAM_SPLIT}
# The widest value of a physical type in memory (a BYTE_ARRAY's is bounded by its page instead).
WIDTHS = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}
OBJECT_BYTES = 64  # a string pandas holds as a Python object (in a nested column's lists)
LEVELS_BYTES = 16  # a nested column's value decoded: its two levels and the value (a string's offset)

MAX_HEADER = 64 << 10  # a page header longer than this is refused (statistics are the only long part)
MAX_DEPTH = 32


class Unreadable(ValueError):
    """The headers are malformed, or say something a bounded read can't do."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end and shift < 70:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    raise Unreadable("a page header runs past its column")


def _struct(data: bytes, pos: int, end: int, depth: int = 0, inner: int = MAX_DEPTH) -> tuple[dict[int, Any], int]:
    """A Thrift compact struct at `pos` in `data[:end]`: its integer, boolean and struct fields by id (others
    skipped, and structs more than `inner` levels down), and where it ends."""
    if depth > MAX_DEPTH:
        raise Unreadable("a page header nests too deep")
    fields: dict[int, Any] = {}
    last = 0
    while pos < end:
        head = data[pos]
        pos += 1
        if head == 0:
            return fields, pos
        kind = head & 0x0F
        if head >> 4:
            last += head >> 4
        else:
            n, pos = _varint(data, pos, end)
            last = (n >> 1) ^ -(n & 1)
        if kind in (1, 2):  # a boolean field: its value is its type
            fields[last] = kind == 1
        elif kind in (4, 5, 6):
            if pos < end and data[pos] < 0x80:  # most are one byte
                n = data[pos]
                pos += 1
            else:
                n, pos = _varint(data, pos, end)
            fields[last] = (n >> 1) ^ -(n & 1)
        elif kind == 12 and inner > 0:
            fields[last], pos = _struct(data, pos, end, depth + 1, inner - 1)
        else:
            pos = _skip(data, pos, end, kind, depth)
    raise Unreadable("a page header runs past its column")


def _skip(data: bytes, pos: int, end: int, kind: int, depth: int) -> int:
    """Where a value of this Thrift type at `pos` ends."""
    if kind in (1, 2, 3):  # a boolean element of a list, or a byte
        pos += 1
    elif kind in (4, 5, 6):
        pos = _varint(data, pos, end)[1]
    elif kind == 7:
        pos += 8
    elif kind == 8:
        n, pos = _varint(data, pos, end)
        pos += n
    elif kind in (9, 10):
        if pos >= end:
            raise Unreadable("a page header runs past its column")
        head = data[pos]
        size, pos = (head >> 4, pos + 1) if head >> 4 != 15 else _varint(data, pos + 1, end)
        for _ in range(size):  # each element takes at least a byte: bounded by the header's length
            pos = _skip(data, pos, end, head & 0x0F, depth + 1)
            if pos > end:
                break
    elif kind == 11:
        size, pos = _varint(data, pos, end)
        if size:
            if pos >= end:
                raise Unreadable("a page header runs past its column")
            types = data[pos]
            pos += 1
            for _ in range(size):
                pos = _skip(data, pos, end, types >> 4, depth + 1)
                pos = _skip(data, pos, end, types & 0x0F, depth + 1)
                if pos > end:
                    break
    elif kind == 12:
        pos = _struct(data, pos, end, depth + 1, inner=0)[1]
    else:
        raise Unreadable(f"a page header holds a field of unknown type {kind}")
    if pos > end:
        raise Unreadable("a page header runs past its column")
    return pos


@dataclasses.dataclass(frozen=True)
class Page:
    kind: int
    uncompressed: int
    compressed: int
    values: int  # entries of a dictionary page; levels of a data page
    rows: int | None  # a v2 data page's rows (a v1 page doesn't say)
    encoding: int
    header: int  # bytes of the header itself


def read_page(data: bytes, pos: int, end: int) -> Page:
    """The page whose header starts at `pos` (the column's bytes end at `end`)."""
    header, stop = _struct(data, pos, min(end, pos + MAX_HEADER, len(data)), inner=1)  # statistics skipped
    kind, uncompressed, compressed = header.get(1), header.get(2), header.get(3)
    if not all(isinstance(n, int) and n >= 0 for n in (kind, uncompressed, compressed)):
        raise Unreadable("a page header without its type and sizes")
    assert isinstance(kind, int) and isinstance(uncompressed, int) and isinstance(compressed, int)
    inner = header.get({DATA_PAGE: 5, DICTIONARY_PAGE: 7, DATA_PAGE_V2: 8}.get(kind, -1))
    if kind != INDEX_PAGE and not isinstance(inner, dict):
        raise Unreadable(f"a page of type {kind} without its header")
    inner = inner or {}
    values = inner.get(1, 0)
    encoding = inner.get(4 if kind == DATA_PAGE_V2 else 2, PLAIN)
    rows = inner.get(3) if kind == DATA_PAGE_V2 else None
    if not isinstance(values, int) or values < 0 or not isinstance(encoding, int):
        raise Unreadable("a page header with a negative count")
    return Page(kind, uncompressed, compressed, values, rows, encoding, stop - pos)


@dataclasses.dataclass
class Leaf:
    """One column of the file as the read sees it."""

    physical: str  # the Parquet physical type: BYTE_ARRAY, INT64, ...
    width: int  # FIXED_LEN_BYTE_ARRAY's length
    nested: bool  # under a list or map: levels aren't rows
    as_dictionary: bool  # read as Arrow dictionary values: its dictionary is not copied into every row


@dataclasses.dataclass
class Limits:
    """What a walk of the headers may itself spend: headers read, and their bytes."""

    pages: int = 5000
    header_bytes: int = 1 << 20


def chunk_cost(data: bytes, chunk: Any, leaf: Leaf, rows: int, budget: int, limits: Limits) -> int:
    """Bytes reading the first `rows` rows of one column chunk (pyarrow's ColumnChunkMetaData) holds, from its
    page headers; `Unreadable` when that passes `budget` or the headers can't say."""
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and 0 < (chunk.dictionary_page_offset or 0) < start:
        start = chunk.dictionary_page_offset  # where Arrow starts (parquet's ComputeColumnChunkRange)
    end = min(start + chunk.total_compressed_size, len(data))
    cost = seen = 0
    entry = 0  # the longest dictionary entry there may be
    pos = start
    while pos < end and seen < rows:
        limits.pages -= 1
        if limits.pages < 0:
            raise Unreadable("too many pages to look through")
        page = read_page(data, pos, end)
        limits.header_bytes -= page.header
        if limits.header_bytes < 0:
            raise Unreadable("too many bytes of page headers to look through")
        cost += page.header + page.uncompressed
        if page.kind == DICTIONARY_PAGE:
            # Decoded whole into entries: a string's bytes copied beside a pointer and a length, and once more
            # into Arrow's dictionary when it is read as one; a number as itself.
            if leaf.physical == "BYTE_ARRAY":
                cost += page.values * 24 + 2 * page.uncompressed
                entry = page.uncompressed
            else:
                entry = leaf.width if leaf.physical == "FIXED_LEN_BYTE_ARRAY" else WIDTHS.get(leaf.physical, 16)
                cost += page.values * (entry + (16 if leaf.physical == "FIXED_LEN_BYTE_ARRAY" else 0))
        elif page.kind in (DATA_PAGE, DATA_PAGE_V2):
            if page.encoding not in BOUNDED_ENCODINGS:
                raise Unreadable("encoded in a way a preview doesn't decode")
            counted = page.rows if page.rows is not None else page.values
            if leaf.nested:
                cost += page.values * (OBJECT_BYTES if leaf.physical == "BYTE_ARRAY" else LEVELS_BYTES)
                if page.rows is None:
                    counted = 0  # v1 levels of a nested column: how many rows they hold is unknown
            seen += counted
            if leaf.physical == "BYTE_ARRAY":  # its values are copied out of the page
                cost += page.uncompressed
            if not leaf.as_dictionary and leaf.physical in ("BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"):
                # each value read is a copy of its dictionary entry (a number's is counted with its levels)
                cost += min(rows, page.values) * entry if not leaf.nested else page.values * entry
        elif page.kind != INDEX_PAGE:
            raise Unreadable(f"a page of unknown type {page.kind}")
        if cost > budget:
            raise Unreadable(f"its first pages take {cost:,} bytes or more")
        pos += page.header + page.compressed
    return cost


@dataclasses.dataclass
class ChunkPages:
    """What all the page headers of one column chunk say, for reading it whole."""

    page_bytes: int = 0  # headers and uncompressed pages: what decompressing them allocates
    values: int = 0  # the data pages' values (a nested column's levels)
    plain_bytes: int = 0  # uncompressed bytes of data pages whose values are copied out of the page itself
    indexed: int = 0  # values of data pages that name dictionary entries
    dictionary: Page | None = None
    dictionary_at: int = 0  # where the dictionary page's header starts


def chunk_pages(data: Any, chunk: Any, limits: Limits) -> ChunkPages:
    """Every page header of one column chunk (pyarrow's ColumnChunkMetaData) in `data` (bytes or an mmap), as far as
    Arrow reads it; `Unreadable` when the headers are malformed, pass `limits`, or name an encoding whose decoder
    sizes its buffers from counts inside the page (the DELTA ones, which the runtime never writes)."""
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and 0 < (chunk.dictionary_page_offset or 0) < start:
        start = chunk.dictionary_page_offset
    if start < 0 or chunk.total_compressed_size < 0:
        raise Unreadable("a column chunk at a negative offset or of a negative size")
    end = min(start + chunk.total_compressed_size, len(data))
    found = ChunkPages()
    pos = start
    while pos < end:
        limits.pages -= 1
        if limits.pages < 0:
            raise Unreadable("too many pages to look through")
        window = data[pos : min(end, pos + 512)]  # a header is most often a few dozen bytes
        try:
            page = read_page(window, 0, len(window))
        except Unreadable:
            if len(window) == end - pos:
                raise
            page = read_page(data, pos, end)
        limits.header_bytes -= page.header
        if limits.header_bytes < 0:
            raise Unreadable("too many bytes of page headers to look through")
        found.page_bytes += page.header + page.uncompressed
        if page.kind == DICTIONARY_PAGE:
            if found.dictionary is not None:
                raise Unreadable("a column chunk with two dictionaries")
            found.dictionary, found.dictionary_at = page, pos
        elif page.kind in (DATA_PAGE, DATA_PAGE_V2):
            if page.encoding not in BOUNDED_ENCODINGS:
                raise Unreadable("a page encoded in a way whose size its header doesn't bound")
            found.values += page.values
            if page.encoding in (PLAIN_DICTIONARY, RLE_DICTIONARY):
                found.indexed += page.values
            else:
                found.plain_bytes += page.uncompressed
        elif page.kind != INDEX_PAGE:
            raise Unreadable(f"a page of unknown type {page.kind}")
        pos += page.header + page.compressed
    return found


# Compression codecs as parquet-format numbers them (pyarrow's metadata names them).
CODECS = {"UNCOMPRESSED": 0, "SNAPPY": 1, "GZIP": 2, "LZO": 3, "BROTLI": 4, "LZ4": 5, "ZSTD": 6, "LZ4_RAW": 7}
I32, I64, BINARY, LIST, STRUCT = 5, 6, 8, 9, 12  # Thrift compact types


def longest_entry(data: Any, pages: ChunkPages, codec: str) -> int:
    """The longest entry of a BYTE_ARRAY column chunk's dictionary page (`pages.dictionary`), decoded by Arrow as
    the read would decode it: the page, as it is, becomes the one PLAIN data page of a file made here, which holds
    (besides a copy of its compressed bytes) its uncompressed size twice while it is read. `Unreadable` when Arrow
    can't decode it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    page = pages.dictionary
    if page is None or page.values == 0:
        return 0
    if page.values > page.uncompressed // 4 or codec not in CODECS:  # each entry starts with its 4-byte length
        raise Unreadable("a dictionary page that can't hold its entries")
    if page.values == 1:
        return page.uncompressed - 4  # or less, where Arrow can't decode it
    at = pages.dictionary_at + page.header
    header = _compact(
        (1, I32, DATA_PAGE),
        (2, I32, page.uncompressed),
        (3, I32, page.compressed),
        (5, STRUCT, _compact((1, I32, page.values), (2, I32, PLAIN), (3, I32, RLE), (4, I32, RLE))),
    )
    size, stored = len(header) + page.uncompressed, len(header) + page.compressed
    column = _compact(
        (1, I32, 6),  # BYTE_ARRAY
        (2, LIST, (I32, [PLAIN])),
        (3, LIST, (BINARY, [b"v"])),
        (4, I32, CODECS[codec]),
        (5, I64, page.values),
        (6, I64, size),
        (7, I64, stored),
        (9, I64, 4),
    )
    group = _compact(
        (1, LIST, (STRUCT, [_compact((2, I64, 4), (3, STRUCT, column))])), (2, I64, size), (3, I64, page.values)
    )
    schema = [_compact((4, BINARY, b"s"), (5, I32, 1)), _compact((1, I32, 6), (3, I32, 0), (4, BINARY, b"v"))]
    footer = _compact((1, I32, 1), (2, LIST, (STRUCT, schema)), (3, I64, page.values), (4, LIST, (STRUCT, [group])))
    made = b"".join(
        (b"PAR1", header, data[at : at + page.compressed], footer, len(footer).to_bytes(4, "little"), b"PAR1")
    )
    try:
        values = pq.ParquetFile(pa.BufferReader(made)).read_row_group(0, use_threads=False).column(0)
    except (pa.ArrowException, OSError, ValueError):
        raise Unreadable("a dictionary page Arrow can't decode") from None
    if len(values) != page.values:
        raise Unreadable("a dictionary page with fewer entries than it says")
    longest = pc.max(pc.binary_length(values)).as_py()
    return int(longest or 0)


# A Thrift compact value as `_compact` takes it: a non-negative integer, bytes (a binary, or a struct's encoding) or a
# list (its element type, its values).
Thrift: TypeAlias = "int | bytes | tuple[int, Sequence[Thrift]]"


def _compact(*fields: tuple[int, int, Thrift]) -> bytes:
    """A Thrift compact struct of (id, type, value) fields, ids increasing by at most 15: non-negative integers,
    bytes, structs (their bytes) and lists ((element type, values))."""
    out = bytearray()
    last = 0
    for field, kind, value in fields:
        out.append((field - last) << 4 | kind)
        last = field
        out += _value(kind, value)
    out.append(0)
    return bytes(out)


def _value(kind: int, value: Thrift) -> bytes:
    if kind in (I32, I64) and isinstance(value, int):
        return _uvarint(value << 1)  # zigzag, of a number that is never negative
    if kind == BINARY and isinstance(value, bytes):
        return _uvarint(len(value)) + value
    if kind == STRUCT and isinstance(value, bytes):
        return value
    if kind == LIST and isinstance(value, tuple):
        element, items = value
        count = len(items)
        head = bytes([count << 4 | element]) if count < 15 else bytes([0xF0 | element]) + _uvarint(count)
        return head + b"".join(_value(element, item) for item in items)
    raise TypeError(f"a {type(value).__name__} is no Thrift value of type {kind}")


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def footer_length(tail: bytes, size: int) -> int:
    """The length of the metadata at the end of a Parquet file of `size` bytes, from its last 8 bytes (`Unreadable`
    when it isn't one)."""
    if size < 12 or len(tail) < 8 or tail[-4:] != b"PAR1":
        raise Unreadable("not a Parquet file")
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > size:
        raise Unreadable("its metadata is longer than the file")
    return length
