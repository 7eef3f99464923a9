"""Money: parsing yuan input into integer fen, formatting fen as yuan, splitting fen by shares."""
from __future__ import annotations

import re
from fractions import Fraction

import pytest

from voucher.analytics.baselines import _sales_fen
from voucher.core.errors import InvalidAmount
from voucher.core.money import format_yuan, parse_yuan, short_yuan, split_by_shares
from voucher.reconciliation.parsing import parse_amount

CHINESE = re.compile(r"[\u4e00-\u9fff]")


# parse_yuan ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("100", 10000),
        ("99.5", 9950),
        ("99.50", 9950),
        ("1,000.00", 100000),
        ("¥20", 2000),
        ("￥20", 2000),
        (" 20 ", 2000),
        ("0.01", 1),
        ("12,345,678.9", 1234567890),
        ("999999999999.99", 99999999999999),
        # a Chinese IME: full-width digits and point, the ideographic full stop, the full-width yen sign
        ("１２．５", 1250),
        ("99。5", 9950),
        ("￥１，０００", 100000),
        ("20元", 2000),
        ("1.500", 150),  # zeros past the second decimal, as some banks write
    ],
)
def test_parse_yuan_accepts(text, fen):
    result = parse_yuan(text)
    assert result == fen
    assert type(result) is int


@pytest.mark.parametrize(
    "text",
    ["", "   ", None, "abc", "1e3", "-1", "100.505", "0", "0.00", "1,00", "1,0000", "10.", ".5", "1 000", "12a",
     "１\u3000０００", "1,23", "(5.00)", "－５", "99。50。"],
)
def test_parse_yuan_refuses_with_chinese_message(text):
    with pytest.raises(InvalidAmount) as info:
        parse_yuan(text)
    assert CHINESE.search(info.value.message), info.value.message


def _form(text):
    try:
        return parse_yuan(text)
    except InvalidAmount:
        return None


#: every place the product reads an amount of yuan: a form, a bank statement's payout, a sales baseline
READERS = {"form": _form, "statement": lambda text: parse_amount(text)[0], "baseline": lambda text: _sales_fen(text)[0]}


@pytest.mark.parametrize(
    "text",
    ["12.50", "１２．５０", "12。5", "¥1,234.5", "1,234.50元", "1.500", " 7 ", "1,23", "1 000", "12.345", "-5", "1e3"],
)
def test_every_reader_of_yuan_reads_the_same_text_the_same_way(text):
    """One reader behind all of them: a text a cashier's form refuses is not paid from a bank file or
    counted as sales, and "1,23" is never read as 123 anywhere."""
    read = {name: reader(text) for name, reader in READERS.items()}
    assert len(set(read.values())) == 1, read


def test_parse_yuan_message_names_the_field():
    with pytest.raises(InvalidAmount) as info:
        parse_yuan("abc", field="订单金额")
    assert "订单金额" in info.value.message
    with pytest.raises(InvalidAmount) as info:
        parse_yuan("", field="面额")
    assert "面额" in info.value.message


def test_parse_yuan_zero_only_when_allowed():
    with pytest.raises(InvalidAmount):
        parse_yuan("0")
    assert parse_yuan("0", allow_zero=True) == 0
    assert parse_yuan("0.00", allow_zero=True) == 0


def test_parse_yuan_round_trips_with_format_yuan():
    for fen in (1, 9, 10, 99, 100, 101, 9950, 100000, 123456789, 99999999999999):
        assert parse_yuan(format_yuan(fen)) == fen
        assert parse_yuan(format_yuan(fen, grouping=False)) == fen


def test_parse_yuan_ungrouped_length_limit():
    # 12 integer digits at most.
    assert parse_yuan("999999999999") == 99999999999900
    with pytest.raises(InvalidAmount):
        parse_yuan("1000000000000000")


def test_parse_yuan_grouped_input_has_the_same_length_limit():
    with pytest.raises(InvalidAmount):
        parse_yuan("1,000,000,000,000,000")
    with pytest.raises(InvalidAmount):
        parse_yuan("100,000,000,000,000,000")


# format_yuan --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (123456789, "1,234,567.89"),
        (0, "0.00"),
        (1, "0.01"),
        (10, "0.10"),
        (100, "1.00"),
        (100000, "1,000.00"),
        (-123456789, "-1,234,567.89"),
        (-1, "-0.01"),
        (-99, "-0.99"),
        (-100, "-1.00"),
    ],
)
def test_format_yuan(fen, text):
    assert format_yuan(fen) == text


def test_format_yuan_without_grouping_and_none():
    assert format_yuan(123456789, grouping=False) == "1234567.89"
    assert format_yuan(-123456789, grouping=False) == "-1234567.89"
    assert format_yuan(None) == "—"


# split_by_shares ----------------------------------------------------------------------------------

SHARE_VECTORS = [
    [1],
    [1, 1],
    [2, 1],
    [1, 2],
    [1, 1, 1],
    [3, 3, 3],
    [1, 0, 1],
    [0, 5],
    [7, 3],
    [60, 30, 10],
    [1, 1, 1, 1, 1, 1, 1],
    [97, 89, 83, 79],
    [1, 999999],
    [333, 333, 334],
]
AMOUNTS = [*range(0, 120), 997, 1001, 9_999, 123_457, 10_000_000_01, 99_999_999_999_99, 2**62 + 1]


def _check_split(amount: int, shares: list[int]) -> list[int]:
    parts = split_by_shares(amount, shares)
    assert len(parts) == len(shares)
    assert all(type(p) is int for p in parts)
    assert sum(parts) == amount, (amount, shares, parts)
    total = sum(shares)
    for part, share in zip(parts, shares):
        exact = Fraction(amount * share, total)
        assert abs(part - exact) < 1, (amount, shares, parts)
        assert part >= 0
        if share == 0:
            assert part == 0
    return parts


def test_split_sums_exactly_and_stays_within_one_fen():
    for shares in SHARE_VECTORS:
        for amount in AMOUNTS:
            _check_split(amount, shares)


def test_split_generated_share_vectors():
    # A deterministic sweep in place of property-based testing.
    for n in range(1, 7):
        for seed in range(40):
            shares = [((seed + 1) * (i + 3) * 7919) % 101 for i in range(n)]
            if sum(shares) == 0:
                shares[0] = 1
            for amount in range(0, 60):
                _check_split(amount, shares)
            for amount in (1009, 65_537, 10**12 + 7):
                _check_split(amount, shares)


def test_split_awkward_small_amounts():
    assert split_by_shares(1, [2, 1]) == [1, 0]
    assert split_by_shares(1, [1, 1, 1]) == [1, 0, 0]  # ties go to the earlier part
    assert split_by_shares(2, [1, 1, 1]) == [1, 1, 0]
    assert split_by_shares(1, [1, 2]) == [0, 1]  # the larger remainder wins
    assert split_by_shares(101, [1, 1]) == [51, 50]
    assert split_by_shares(100, [1, 1, 1]) == [34, 33, 33]
    assert split_by_shares(0, [1, 1]) == [0, 0]


def test_split_is_deterministic():
    for shares in SHARE_VECTORS:
        for amount in (1, 2, 7, 101, 997, 123_457):
            first = split_by_shares(amount, list(shares))
            for _ in range(3):
                assert split_by_shares(amount, list(shares)) == first


def test_split_does_not_modify_the_shares():
    shares = [2, 1]
    split_by_shares(5, shares)
    assert shares == [2, 1]


@pytest.mark.parametrize(
    ("amount", "shares"),
    [(-1, [1, 1]), (-100, [1]), (100, [0, 0]), (100, [0]), (100, []), (100, [1, -1]), (100, [-1, 2])],
)
def test_split_refuses_bad_input(amount, shares):
    with pytest.raises(ValueError):
        split_by_shares(amount, shares)


def test_full_width_digits_from_a_chinese_keyboard_are_accepted_other_scripts_are_not():
    assert parse_yuan("１００．５") == 100_50
    with pytest.raises(InvalidAmount):
        parse_yuan("١٠٠")  # Arabic-Indic digits are not an amount a cashier types


@pytest.mark.parametrize(("fen", "text"), [
    (100_000_00, "10万"), (15_000_00, "1.5万"), (12_345_678_000_00, "1234567.8万"), (12_345_00, "12345"),
    (3000_00, "3000"), (20_00, "20"), (99_50, "99.5"), (1, "0.01"), (10_000_01, "10000.01"),
])
def test_short_yuan_reads_like_a_rule_and_loses_nothing(fen, text):
    """A car subsidy read 满100000减3000; a rule says 满10万减3000."""
    assert short_yuan(fen) == text
