"""The store's bit commands (SETBIT ... BITFIELD_RO) and LCS against a real redis-server
(the oracle): the same commands on both, the same replies, in RESP2 and RESP3, on one
worker and on two; keys of a command over several keys share a hash tag."""

from __future__ import annotations

import pytest

from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRIPT = [
    # SETBIT and GETBIT: growing the string, keeping its TTL, errors in Redis's order
    ["SETBIT", "b", "7", "1"], ["SETBIT", "b", "7", "1"], ["SETBIT", "b", "0", "1"],
    ["GET", "b"], ["SETBIT", "b", "100", "1"], ["STRLEN", "b"], ["GETBIT", "b", "100"],
    ["GETBIT", "b", "99"], ["GETBIT", "b", "100000"], ["GETBIT", "nokey", "3"],
    ["SETBIT", "b", "7", "0"], ["GETBIT", "b", "7"], ["SETBIT", "z", "3", "0"], ["GET", "z"],
    ["SETBIT", "b", "-1", "1"], ["SETBIT", "b", "x", "1"], ["SETBIT", "b", "#1", "1"],
    ["SETBIT", "b", "4294967296", "1"], ["SETBIT", "b", "4294967295", "x"],
    ["SETBIT", "b", "1", "2"], ["SETBIT", "b", "1", "-1"], ["SETBIT", "b", "1"],
    ["GETBIT", "b", "-1"], ["GETBIT", "b", "4294967296"], ["GETBIT", "b"],
    ["SET", "t", "a"], ["EXPIRE", "t", "100"], ["SETBIT", "t", "30", "1"], ["TTL", "t"],
    ["GET", "t"],
    ["HSET", "h", "f", "v"], ["SETBIT", "h", "1", "1"], ["GETBIT", "h", "1"],
    ["SETBIT", "h", "x", "1"], ["GETBIT", "h", "x"],
    # BITCOUNT, by bytes and by bits
    ["SET", "s", "foobar"], ["BITCOUNT", "s"], ["BITCOUNT", "s", "0", "0"],
    ["BITCOUNT", "s", "1", "1"], ["BITCOUNT", "s", "1", "1", "BYTE"],
    ["BITCOUNT", "s", "5", "30", "BIT"], ["BITCOUNT", "s", "5", "30", "bit"],
    ["BITCOUNT", "s", "-2", "-1"], ["BITCOUNT", "s", "-100", "100"],
    ["BITCOUNT", "s", "-1", "-5"], ["BITCOUNT", "s", "-20", "-10"],
    ["BITCOUNT", "s", "-10", "-20"], ["BITCOUNT", "s", "3", "1"],
    ["BITCOUNT", "s", "-3", "-1", "BIT"], ["BITCOUNT", "s", "47", "47", "BIT"],
    ["BITCOUNT", "s", "40", "1000", "BIT"], ["BITCOUNT", "s", "5", "30", "BUT"],
    ["BITCOUNT", "s", "1"], ["BITCOUNT", "s", "1", "2", "BIT", "x"],
    ["BITCOUNT", "s", "x", "1"], ["BITCOUNT", "s", "1", "x"], ["BITCOUNT", "s", "x", "1", "BUT"],
    ["BITCOUNT", "nokey"], ["BITCOUNT", "nokey", "x"], ["BITCOUNT", "h"],
    ["BITCOUNT", "h", "0", "1"], ["SET", "empty", ""], ["BITCOUNT", "empty", "0", "-1"],
    ["BITCOUNT", "empty", "0", "-1", "BIT"],
    # BITPOS: clear bits past the end unless an end is given, BYTE and BIT ranges
    ["SET", "p", b"\xff\xf0\x00"], ["BITPOS", "p", "0"], ["BITPOS", "p", "1"],
    ["BITPOS", "p", "0", "2", "-1"], ["BITPOS", "p", "0", "-2", "-1"], ["BITPOS", "p", "0", "1"],
    ["BITPOS", "p", "1", "2"], ["BITPOS", "p", "1", "1", "1"], ["BITPOS", "p", "0", "0", "0"],
    ["BITPOS", "p", "0", "7", "15", "BIT"], ["BITPOS", "p", "1", "7", "15", "bit"],
    ["BITPOS", "p", "0", "3", "4", "BIT"], ["BITPOS", "p", "1", "12", "-1", "BIT"],
    ["BITPOS", "p", "1", "1", "2", "BYTE"], ["BITPOS", "p", "0", "10"],
    ["BITPOS", "p", "1", "-1", "-5"], ["BITPOS", "p", "1", "-10", "-20"],
    ["BITPOS", "p", "0", "5", "3"], ["BITPOS", "p", "1", "2", "1", "BIT"],
    ["SET", "ones", b"\xff\xff"], ["BITPOS", "ones", "0"], ["BITPOS", "ones", "0", "0"],
    ["BITPOS", "ones", "0", "0", "-1"], ["BITPOS", "ones", "0", "3", "-1", "BIT"],
    ["BITPOS", "ones", "0", "3", "BIT"], ["BITPOS", "ones", "1", "3", "5", "BIT"],
    ["BITPOS", "empty", "0"], ["BITPOS", "empty", "1"], ["BITPOS", "empty", "0", "0"],
    ["BITPOS", "nokey", "0"], ["BITPOS", "nokey", "1"], ["BITPOS", "nokey", "1", "x"],
    ["BITPOS", "p", "2"], ["BITPOS", "p", "x"], ["BITPOS", "nokey", "2"],
    ["BITPOS", "p", "1", "x"], ["BITPOS", "p", "1", "0", "x"],
    ["BITPOS", "p", "1", "0", "x", "BUT"],
    ["BITPOS", "p", "1", "0", "1", "BUT"], ["BITPOS", "p", "1", "0", "1", "BIT", "x"],
    ["BITPOS", "h", "1"], ["BITPOS", "h", "1", "x"], ["BITPOS", "p"],
    # BITOP: zero padding, NOT, missing keys, an empty result deletes the destination
    ["SET", "{o}a", b"\x01\x02\xff\xff"], ["SET", "{o}b", b"\x01\x02\xff"],
    ["BITOP", "AND", "{o}r", "{o}a", "{o}b"], ["GET", "{o}r"],
    ["BITOP", "or", "{o}r", "{o}a", "{o}b"], ["GET", "{o}r"],
    ["BITOP", "Xor", "{o}r", "{o}a", "{o}b", "{o}b"], ["GET", "{o}r"],
    ["BITOP", "NOT", "{o}r", "{o}a"], ["GET", "{o}r"], ["BITOP", "NOT", "{o}a", "{o}a"],
    ["GET", "{o}a"], ["BITOP", "AND", "{o}r", "{o}a", "{o}none"], ["GET", "{o}r"],
    ["BITOP", "OR", "{o}r", "{o}none"], ["EXISTS", "{o}r"],
    ["SET", "{o}e", ""], ["SET", "{o}r", "x"], ["BITOP", "NOT", "{o}r", "{o}e"],
    ["EXISTS", "{o}r"], ["HSET", "{o}h", "f", "v"], ["EXPIRE", "{o}h", "100"],
    ["BITOP", "OR", "{o}h", "{o}a"], ["TYPE", "{o}h"], ["TTL", "{o}h"],
    ["BITOP", "OR", "{o}r", "{o}a", "{o}h"], ["BITOP", "NOT", "{o}r", "{o}a", "{o}b"],
    ["BITOP", "NAND", "{o}r", "{o}a"], ["BITOP", "AND", "{o}r"],
    # BITFIELD: GET/SET/INCRBY, signed and unsigned, # offsets, the three overflow rules
    ["BITFIELD", "f", "SET", "u8", "8", "255", "GET", "u8", "0", "GET", "u4", "8",
     "GET", "u4", "12", "GET", "u4", "13"],
    ["BITFIELD", "f", "SET", "u8", "4", "1", "GET", "u16", "0", "SET", "u16", "0", "0"],
    ["BITFIELD", "f", "INCRBY", "u8", "8", "254", "INCRBY", "u8", "8", "1", "GET", "u16", "0"],
    ["BITFIELD", "f", "INCRBY", "u8", "8", "1", "OVERFLOW", "SAT", "INCRBY", "u8", "8", "-5",
     "INCRBY", "u8", "8", "-500", "INCRBY", "u8", "8", "1000", "OVERFLOW", "FAIL",
     "INCRBY", "u8", "8", "1", "INCRBY", "u8", "8", "-256", "GET", "u8", "8"],
    ["BITFIELD", "g", "SET", "i8", "0", "127", "INCRBY", "i8", "0", "1", "GET", "i8", "0",
     "OVERFLOW", "sat", "INCRBY", "i8", "0", "-200", "INCRBY", "i8", "0", "300",
     "OVERFLOW", "fail", "INCRBY", "i8", "0", "1", "SET", "i8", "0", "-129",
     "SET", "i8", "0", "-128", "GET", "i8", "0"],
    ["BITFIELD", "g", "SET", "u8", "0", "-1", "OVERFLOW", "SAT", "SET", "u8", "0", "-1",
     "SET", "u8", "0", "256", "OVERFLOW", "FAIL", "SET", "u8", "0", "-1", "GET", "u8", "0"],
    ["BITFIELD", "g", "SET", "i64", "0", "9223372036854775807", "INCRBY", "i64", "0", "1",
     "OVERFLOW", "SAT", "INCRBY", "i64", "0", "1", "INCRBY", "i64", "0",
     "-9223372036854775808", "GET", "u63", "1", "GET", "i64", "0", "GET", "i1", "0"],
    ["BITFIELD", "g", "SET", "u63", "0", "-1", "GET", "u63", "0", "INCRBY", "u63", "0", "1"],
    ["BITFIELD", "g", "SET", "i5", "#1", "-3", "GET", "i5", "#1", "GET", "u5", "5",
     "INCRBY", "i5", "#1", "-20", "GET", "u3", "#100", "SET", "u1", "#20", "1"],
    ["GET", "g"], ["STRLEN", "g"],
    ["BITFIELD", "fresh", "OVERFLOW", "FAIL", "INCRBY", "u8", "16", "300"], ["GET", "fresh"],
    ["BITFIELD", "nokey", "GET", "u8", "0", "GET", "i16", "100"], ["EXISTS", "nokey"],
    ["BITFIELD", "f"], ["BITFIELD", "nokey"], ["EXISTS", "nokey"],
    ["SET", "t", "abc"], ["EXPIRE", "t", "100"], ["BITFIELD", "t", "SET", "u8", "40", "7"],
    ["TTL", "t"], ["GET", "t"],
    ["BITFIELD", "f", "GET", "u64", "0"], ["BITFIELD", "f", "GET", "i65", "0"],
    ["BITFIELD", "f", "GET", "i0", "0"], ["BITFIELD", "f", "GET", "x8", "0"],
    ["BITFIELD", "f", "GET", "i", "0"], ["BITFIELD", "f", "GET", "u8", "-1"],
    ["BITFIELD", "f", "GET", "u8", "#x"], ["BITFIELD", "f", "GET", "u8", "x"],
    ["BITFIELD", "f", "GET", "u8", "4294967296"], ["BITFIELD", "f", "GET", "u8", "#536870912"],
    ["BITFIELD", "f", "SET", "u8", "0", "x"], ["BITFIELD", "f", "SET", "u8", "0"],
    ["BITFIELD", "f", "GET", "u8"], ["BITFIELD", "f", "OVERFLOW", "BAD", "GET", "u8", "0"],
    ["BITFIELD", "f", "OVERFLOW"], ["BITFIELD", "f", "BOGUS", "u8", "0"],
    ["BITFIELD", "f", "GET", "u8", "0", "GET", "x8", "0"], ["BITFIELD", "h", "GET", "u8", "0"],
    ["BITFIELD", "h", "SET", "u8", "0", "1"], ["BITFIELD", "h"], ["BITFIELD", "h", "GET", "x", "0"],
    ["BITFIELD_RO", "f", "GET", "u8", "0", "GET", "u4", "12"], ["BITFIELD_RO", "f"],
    ["BITFIELD_RO", "nokey", "GET", "i8", "0"], ["BITFIELD_RO", "f", "SET", "u8", "0", "1"],
    ["BITFIELD_RO", "f", "INCRBY", "u8", "0", "x"], ["BITFIELD_RO", "h", "GET", "u8", "0"],
    ["BITFIELD_RO", "h", "SET", "u8", "0", "1"], ["BITFIELD_RO", "f", "OVERFLOW", "SAT"],
    # LCS: the string, LEN, IDX with MINMATCHLEN and WITHMATCHLEN (a map in RESP3)
    ["MSET", "{l}1", "ohmytext", "{l}2", "mynewtext"], ["LCS", "{l}1", "{l}2"],
    ["LCS", "{l}1", "{l}2", "LEN"], ["LCS", "{l}1", "{l}2", "IDX"],
    ["LCS", "{l}1", "{l}2", "IDX", "MINMATCHLEN", "4"],
    ["LCS", "{l}1", "{l}2", "IDX", "MINMATCHLEN", "-3", "WITHMATCHLEN"],
    ["LCS", "{l}1", "{l}2", "idx", "withmatchlen", "minmatchlen", "2", "minmatchlen", "3"],
    ["LCS", "{l}2", "{l}1", "IDX", "WITHMATCHLEN"], ["LCS", "{l}1", "{l}1", "IDX"],
    ["LCS", "{l}1", "{l}none"], ["LCS", "{l}none", "{l}1", "IDX"],
    ["LCS", "{l}1", "{l}none", "LEN"],
    ["MSET", "{l}3", "abcabcabcaabb", "{l}4", "bacbbacabcbab"], ["LCS", "{l}3", "{l}4"],
    ["LCS", "{l}3", "{l}4", "IDX", "WITHMATCHLEN"], ["LCS", "{l}4", "{l}3", "IDX"],
    ["LCS", "{l}1", "{l}2", "LEN", "IDX"], ["LCS", "{l}1", "{l}2", "MINMATCHLEN"],
    ["LCS", "{l}1", "{l}2", "MINMATCHLEN", "x"], ["LCS", "{l}1", "{l}2", "BOGUS"],
    ["HSET", "{l}h", "f", "v"], ["LCS", "{l}1", "{l}h"], ["LCS", "{l}h", "{l}1", "BOGUS"],
    ["LCS", "{l}1"],
    ["SET", "{l}big", "x" * 12000], ["LCS", "{l}big", "{l}big", "LEN"],
    ["SET", "{l}mid", "ab" * 1500], ["LCS", "{l}mid", "{l}3", "IDX", "MINMATCHLEN", "2"],
    # in a transaction, and on the keys' own worker
    ["MULTI"], ["SETBIT", "{m}a", "3", "1"], ["BITCOUNT", "{m}a"], ["GETBIT", "{m}a", "3"],
    ["BITOP", "NOT", "{m}b", "{m}a"], ["BITFIELD", "{m}b", "GET", "u8", "0"],
    ["LCS", "{m}a", "{m}b", "LEN"], ["EXEC"],
]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("workers", [1, 2])
def test_bit_commands_answer_as_redis(stores, oracle, workers, protocol):
    ours = replies(stores[workers].port, SCRIPT, protocol)
    theirs = replies(oracle, SCRIPT, protocol)
    assert_same(SCRIPT, ours, theirs)
