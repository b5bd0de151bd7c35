"""The slot table: lookups, reuse with a new gen, and the named answer when full."""
import pytest

from event.errors import PoolFullError, UnknownSlotError
from event.slots import GEN_MASK, IDX_MASK, IDX_BITS, SLOTS_PER_TABLE, SlotTable, pack


def test_freed_slot_is_reused_with_the_next_gen():
    table = SlotTable(hint=1)
    first = table.alloc()
    gen = first.gen
    first.fd = 7
    table.free(first)
    again = table.alloc()
    assert again is first
    assert again.gen == (gen + 1) & GEN_MASK
    assert again.fd == -1 and again.handler is None
    assert table.in_use() == 1


def test_gen_wraps_within_its_bits():
    table = SlotTable(hint=1)
    slot = table.alloc()
    for _ in range(GEN_MASK + 1):
        table.free(slot)
        assert table.alloc() is slot
    assert slot.gen == 0


def test_tables_are_made_on_demand_and_the_table_fills_up():
    table = SlotTable(hint=1, max_tables=2)
    assert table.lookup(SLOTS_PER_TABLE) is None          # second table not made yet
    slots = [table.alloc() for _ in range(2 * SLOTS_PER_TABLE)]
    assert [s.idx for s in slots] == list(range(2 * SLOTS_PER_TABLE))
    assert table.lookup(SLOTS_PER_TABLE) is slots[SLOTS_PER_TABLE]
    with pytest.raises(PoolFullError):
        table.alloc()
    table.free(slots[5])
    assert table.alloc() is slots[5]


def test_bad_indexes_get_named_answers():
    table = SlotTable(hint=1, max_tables=1)
    assert table.lookup(-1) is None
    assert table.lookup(SLOTS_PER_TABLE) is None
    with pytest.raises(UnknownSlotError):
        table.get(SLOTS_PER_TABLE)
    with pytest.raises(TypeError):
        table.get("1")
    with pytest.raises(ValueError):
        SlotTable(max_tables=0)


def test_packed_idx_and_gen_fit_a_positive_c_int():
    packed = pack(IDX_MASK, GEN_MASK)
    assert 0 < packed < 2 ** 31
    assert packed & IDX_MASK == IDX_MASK and packed >> IDX_BITS == GEN_MASK
    assert pack(0, 0) == 0
