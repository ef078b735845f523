#!/usr/bin/env python3
"""mdb_values.py DATA.MDB: list where the record values of an LMDB data
file are, one line per record: DB OFFSET LENGTH KEYHEX (the value bytes
in the file, for tests that damage a value inside a sound page).

Reads LMDB 0.9's layout (64-bit): the newest meta page, the main
database's leaves (named databases), and each named database's tree.
Values in overflow pages are listed at their first data byte."""
import struct
import sys

P_BRANCH, P_LEAF, P_OVERFLOW = 0x01, 0x02, 0x04
F_BIGDATA, F_SUBDATA = 0x01, 0x02


def main():
    data = open(sys.argv[1], "rb").read()
    metas = []
    for i in range(2):
        off = i * 4096 if i == 0 else struct.unpack_from("<I", data, 16 + 24)[0]
        m = off + 16
        psize = struct.unpack_from("<I", data, m + 24)[0]
        txnid = struct.unpack_from("<Q", data, m + 128)[0]
        metas.append((txnid, psize, m))
    _, psize, m = max(metas)
    main_root = struct.unpack_from("<Q", data, m + 112)[0]

    def leaves(pgno):
        p = pgno * psize
        flags, lower = struct.unpack_from("<HH", data, p + 10)
        for i in range((lower - 16) // 2):
            off = struct.unpack_from("<H", data, p + 16 + 2 * i)[0]
            node = p + off
            lo, hi, nf, ks = struct.unpack_from("<HHHH", data, node)
            if flags & P_BRANCH:
                yield from leaves(lo | hi << 16 | nf << 32)
                continue
            key = data[node + 8: node + 8 + ks]
            ds = lo | hi << 16
            voff = node + 8 + ks
            if nf & F_BIGDATA:
                ov = struct.unpack_from("<Q", data, voff)[0]
                yield key, ov * psize + 16, ds, nf
            else:
                yield key, voff, ds, nf

    if main_root == 0xFFFFFFFFFFFFFFFF:
        return
    for name, voff, ds, nf in leaves(main_root):
        if not nf & F_SUBDATA:
            print("main", voff, ds, name.hex())
            continue
        root = struct.unpack_from("<Q", data, voff + 40)[0]
        if root == 0xFFFFFFFFFFFFFFFF:
            continue
        for key, off, n, _ in leaves(root):
            print(name.decode(errors="replace"), off, n, key.hex())


main()
