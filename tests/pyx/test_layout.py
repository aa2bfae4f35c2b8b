"""The C records in pyx/records.pxd match the numpy dtypes of bursa_wire/layout.py."""

import pytest

from bursa_wire.layout import CMD_DTYPE, CMD_FIELDS, EV_DTYPE, EV_FIELDS
from pyx.book import _layout_offsets


@pytest.mark.parametrize(
    ("struct", "dtype", "fields"),
    [("CmdRec", CMD_DTYPE, CMD_FIELDS), ("EvRec", EV_DTYPE, EV_FIELDS)],
)
def test_c_struct_matches_dtype(struct, dtype, fields):
    c = dict(_layout_offsets()[struct])
    assert c.pop("__size__") == dtype.itemsize == 96
    # same field names, in the same order, at the same offsets
    assert list(c) == [f.name for f in fields]
    assert dtype.fields is not None
    for name, off in c.items():
        assert off == dtype.fields[name][1], name


def test_offsets_are_packed_and_increasing():
    for struct, dtype in (("CmdRec", CMD_DTYPE), ("EvRec", EV_DTYPE)):
        c = dict(_layout_offsets()[struct])
        size = c.pop("__size__")
        offs = list(c.values())
        assert dtype.fields is not None
        ends = [o + dtype.fields[n][0].itemsize for n, o in c.items()]
        assert offs[0] == 0 and ends[-1] == size
        assert offs[1:] == ends[:-1], f"{struct} has padding"
