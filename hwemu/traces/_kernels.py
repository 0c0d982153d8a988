"""Compiled text parsers for the trace importers.

Each kernel parses a block of complete lines (a numpy ``uint8`` view of the bytes, ending just
after a newline or at end of input) into preallocated output arrays and returns
``(n_records, n_lines, err_pos)``: ``err_pos`` is -1 on success, otherwise the byte offset of
the start of the first malformed line (the caller turns it into a line number and the line's
text). Lines are never split between calls: the reader keeps the tail after the last newline
of a block and prepends it to the next block.

The kernels are numba ``@njit(cache=True)`` functions: compiled once per machine into
``__pycache__`` and reused. One pass over the bytes, no Python objects per line: this is what
makes the importers reach tens of millions of lines per second instead of a few hundred
thousand.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NL = 10
CR = 13
SP = 32
TAB = 9


@njit(cache=True, inline="always")
def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@njit(cache=True, inline="always")
def _line_end(buf, i, n):
    while i < n and buf[i] != NL:
        i += 1
    return i


@njit(cache=True, inline="always")
def _trim_end(buf, start, end):
    while end > start and (buf[end - 1] == CR or buf[end - 1] == SP or buf[end - 1] == TAB):
        end -= 1
    return end


@njit(cache=True, inline="always")
def _skip_blank(buf, i, end):
    while i < end and (buf[i] == SP or buf[i] == TAB):
        i += 1
    return i


@njit(cache=True)
def parse_lackey(buf, kind, addr, size):
    """Valgrind lackey ``--trace-mem=yes`` lines: ``I  04000ad0,3`` / `` L 1ffe,8`` / S / M.

    Lines starting with ``==`` (Valgrind's own messages) and blank lines are skipped.
    """
    n = buf.shape[0]
    i = 0
    nrec = 0
    nlines = 0
    while i < n:
        start = i
        end = _line_end(buf, i, n)
        nlines += 1
        i = end + 1
        e = _trim_end(buf, start, end)
        p = _skip_blank(buf, start, e)
        if p == e:
            continue
        c = buf[p]
        if c == 61 and p + 1 < e and buf[p + 1] == 61:  # "=="
            continue
        if c == 73:
            k = 0
        elif c == 76:
            k = 1
        elif c == 83:
            k = 2
        elif c == 77:
            k = 3
        else:
            return nrec, nlines, start
        p += 1
        if p >= e or (buf[p] != SP and buf[p] != TAB):
            return nrec, nlines, start
        p = _skip_blank(buf, p, e)
        a = np.uint64(0)
        nd = 0
        while p < e:
            h = _hexval(buf[p])
            if h < 0:
                break
            a = (a << np.uint64(4)) | np.uint64(h)
            nd += 1
            p += 1
        if nd == 0 or nd > 16 or p >= e or buf[p] != 44:  # ','
            return nrec, nlines, start
        p += 1
        s = 0
        nd = 0
        while p < e and 48 <= buf[p] <= 57:
            s = s * 10 + (buf[p] - 48)
            nd += 1
            p += 1
            if s > 65535:
                return nrec, nlines, start
        if nd == 0 or p != e:
            return nrec, nlines, start
        kind[nrec] = k
        addr[nrec] = a
        size[nrec] = s
        nrec += 1
    return nrec, nlines, -1


@njit(cache=True, inline="always")
def _parse_hex_token(buf, p, e):
    """Parse ``0x1f`` / ``1f`` at p; returns (value, next_pos, ndigits)."""
    if p + 1 < e and buf[p] == 48 and (buf[p + 1] == 120 or buf[p + 1] == 88):
        p += 2
    a = np.uint64(0)
    nd = 0
    while p < e:
        h = _hexval(buf[p])
        if h < 0:
            break
        a = (a << np.uint64(4)) | np.uint64(h)
        nd += 1
        p += 1
    return a, p, nd


@njit(cache=True)
def parse_pin(buf, kind, addr, ip):
    """Pin pinatrace lines: ``0x7f3c...: R 0x7ffd...`` (R = load, W = store).

    Lines starting with ``#`` (comments, ``#eof``) and blank lines are skipped. The
    instruction pointer of each record is returned in ``ip``.
    """
    n = buf.shape[0]
    i = 0
    nrec = 0
    nlines = 0
    while i < n:
        start = i
        end = _line_end(buf, i, n)
        nlines += 1
        i = end + 1
        e = _trim_end(buf, start, end)
        p = _skip_blank(buf, start, e)
        if p == e or buf[p] == 35:  # '#'
            continue
        a, p, nd = _parse_hex_token(buf, p, e)
        if nd == 0 or nd > 16 or p >= e or buf[p] != 58:  # ':'
            return nrec, nlines, start
        p = _skip_blank(buf, p + 1, e)
        if p >= e:
            return nrec, nlines, start
        c = buf[p]
        if c == 82:
            k = 1
        elif c == 87:
            k = 2
        else:
            return nrec, nlines, start
        p += 1
        if p >= e or (buf[p] != SP and buf[p] != TAB):
            return nrec, nlines, start
        p = _skip_blank(buf, p, e)
        b, p, nd = _parse_hex_token(buf, p, e)
        if nd == 0 or nd > 16 or p != e:
            return nrec, nlines, start
        kind[nrec] = k
        addr[nrec] = b
        ip[nrec] = a
        nrec += 1
    return nrec, nlines, -1


@njit(cache=True, inline="always")
def _parse_int_field(buf, p, e):
    """Decimal or 0x-hex unsigned integer filling exactly [p, e); returns (value, ok)."""
    if p >= e:
        return np.uint64(0), False
    v = np.uint64(0)
    if e - p > 2 and buf[p] == 48 and (buf[p + 1] == 120 or buf[p + 1] == 88):
        p += 2
        if e - p > 16:
            return v, False
        while p < e:
            h = _hexval(buf[p])
            if h < 0:
                return v, False
            v = (v << np.uint64(4)) | np.uint64(h)
            p += 1
        return v, True
    if e - p > 20:
        return v, False
    while p < e:
        c = buf[p]
        if c < 48 or c > 57:
            return v, False
        d = np.uint64(c - 48)
        if v > np.uint64(1844674407370955161) or (v == np.uint64(1844674407370955161) and d > np.uint64(5)):
            return v, False
        v = v * np.uint64(10) + d
        p += 1
    return v, True


@njit(cache=True)
def parse_csv(buf, ncols, col_kind, col_addr, col_size, col_tid, col_insts,
              kind, addr, size, tid, insts):
    """CSV data lines (the header has been consumed) with ``ncols`` fields each.

    ``col_*`` give each field's column index (-1 for an absent optional column). Returns
    ``(n_records, n_lines, err_pos, err_col)``; ``err_col`` is the column index of the
    offending field, -1 for a wrong field count, -2 for an unparseable line.
    """
    n = buf.shape[0]
    i = 0
    nrec = 0
    nlines = 0
    starts = np.empty(ncols + 1, np.int64)
    ends = np.empty(ncols + 1, np.int64)
    while i < n:
        start = i
        end = _line_end(buf, i, n)
        nlines += 1
        i = end + 1
        e = _trim_end(buf, start, end)
        p = _skip_blank(buf, start, e)
        if p == e:
            continue
        # split into fields
        f = 0
        fs = start
        q = start
        too_many = False
        while True:
            if q == e or buf[q] == 44:
                if f >= ncols:
                    too_many = True
                    break
                a = _skip_blank(buf, fs, q)
                b = _trim_end(buf, a, q)
                starts[f] = a
                ends[f] = b
                f += 1
                if q == e:
                    break
                fs = q + 1
            q += 1
        if too_many or f != ncols:
            return nrec, nlines, start, -1
        # kind
        a = starts[col_kind]
        if ends[col_kind] - a != 1:
            return nrec, nlines, start, col_kind
        c = buf[a]
        if c == 73 or c == 105:
            k = 0
        elif c == 76 or c == 108:
            k = 1
        elif c == 83 or c == 115:
            k = 2
        elif c == 77 or c == 109:
            k = 3
        else:
            return nrec, nlines, start, col_kind
        v, ok = _parse_int_field(buf, starts[col_addr], ends[col_addr])
        if not ok:
            return nrec, nlines, start, col_addr
        addr[nrec] = v
        v, ok = _parse_int_field(buf, starts[col_size], ends[col_size])
        if not ok or v > np.uint64(65535):
            return nrec, nlines, start, col_size
        size[nrec] = v
        if col_tid >= 0:
            v, ok = _parse_int_field(buf, starts[col_tid], ends[col_tid])
            if not ok or v > np.uint64(65535):
                return nrec, nlines, start, col_tid
            tid[nrec] = v
        else:
            tid[nrec] = 0
        if col_insts >= 0:
            v, ok = _parse_int_field(buf, starts[col_insts], ends[col_insts])
            if not ok or v > np.uint64(4294967295):
                return nrec, nlines, start, col_insts
            insts[nrec] = v
        else:
            insts[nrec] = 0
        kind[nrec] = k
        nrec += 1
    return nrec, nlines, -1, 0
