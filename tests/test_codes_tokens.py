"""Voucher codes (check character) and signed QR tokens (HMAC, key ring)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import string

import pytest

from voucher.core.errors import InvalidToken
from voucher.vouchers import codes, tokens

# Codes --------------------------------------------------------------------------------------------

SAMPLE_CODES = [codes.new_code() for _ in range(40)] + [
    # fixed codes, so the exhaustive checks also cover the alphabet's ends
    "2222222222" + codes.check_char("2222222222"),
    "ZZZZZZZZZZ" + codes.check_char("ZZZZZZZZZZ"),
    "23456789AB" + codes.check_char("23456789AB"),
    "ZYXWVUTSRQ" + codes.check_char("ZYXWVUTSRQ"),
]


def test_alphabet_leaves_out_confusable_characters():
    assert len(codes.ALPHABET) == 31 == len(set(codes.ALPHABET))
    for confusable in "01OIL":
        assert confusable not in codes.ALPHABET


def test_new_code_shape():
    seen = set()
    for _ in range(500):
        code = codes.new_code()
        assert len(code) == 11
        assert set(code) <= set(codes.ALPHABET)
        assert codes.is_well_formed(code)
        seen.add(code)
    assert len(seen) == 500  # random, not a constant


def test_is_well_formed_refuses_wrong_length_and_foreign_characters():
    code = codes.new_code()
    assert not codes.is_well_formed(code[:-1])
    assert not codes.is_well_formed(code + "2")
    assert not codes.is_well_formed("")
    assert not codes.is_well_formed(code.lower())
    for foreign in "01OIL-a ":
        assert not codes.is_well_formed(code[:4] + foreign + code[5:])


@pytest.mark.parametrize("code", SAMPLE_CODES)
def test_every_single_substitution_is_detected(code):
    assert codes.is_well_formed(code)
    for position in range(len(code)):
        for replacement in codes.ALPHABET + "01OIL":
            if replacement == code[position]:
                continue
            typo = code[:position] + replacement + code[position + 1 :]
            assert not codes.is_well_formed(typo), (code, position, replacement)


@pytest.mark.parametrize("code", SAMPLE_CODES)
def test_every_adjacent_swap_is_detected(code):
    for position in range(len(code) - 1):
        a, b = code[position], code[position + 1]
        if a == b:
            continue
        swapped = code[:position] + b + a + code[position + 2 :]
        assert not codes.is_well_formed(swapped), (code, position)


def test_adjacent_swaps_including_the_check_character_exhaustively():
    # Every pair of different characters at every adjacent pair of positions of one base code.
    base = "ABCDEFGHJK"
    for position in range(codes.DATA_LENGTH):
        for a in codes.ALPHABET:
            for b in codes.ALPHABET:
                if a == b:
                    continue
                data = base[:position] + a + base[position + 1 :]
                if position + 1 < codes.DATA_LENGTH:
                    data = data[: position + 1] + b + data[position + 2 :]
                    code = data + codes.check_char(data)
                else:
                    code = data + codes.check_char(data)
                    if code[-1] == code[-2]:
                        continue
                assert codes.is_well_formed(code)
                swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
                assert not codes.is_well_formed(swapped), (code, position)


def test_normalise():
    code = codes.new_code()
    grouped = codes.display(code)
    assert codes.normalise(code.lower()) == code
    assert codes.normalise(grouped) == code
    assert codes.normalise(grouped.lower()) == code
    assert codes.normalise(" " + code[:4] + " " + code[4:8] + "-" + code[8:] + " ") == code
    assert codes.normalise(code[:3] + "--" + code[3:] + "\t") == code
    assert codes.is_well_formed(codes.normalise(grouped.lower()))


def test_display_groups_by_four():
    assert codes.display("ABCDEFGHJKM") == "ABCD-EFGH-JKM"
    code = codes.new_code()
    shown = codes.display(code)
    assert shown == f"{code[:4]}-{code[4:8]}-{code[8:]}"
    assert [len(group) for group in shown.split("-")] == [4, 4, 3]


# Tokens -------------------------------------------------------------------------------------------

K1 = b"first-signing-key-0123456789"
K2 = b"second-signing-key-abcdefghij"
RING = {"k1": K1}


def test_sign_verify_round_trip():
    for _ in range(20):
        code = codes.new_code()
        token = tokens.sign(code, RING, "k1")
        assert tokens.verify(token, RING) == code
        assert tokens.verify("  " + token + "\n", RING) == code  # scanners add whitespace


def test_token_holds_only_prefix_kid_code_and_signature():
    code = codes.new_code()
    token = tokens.sign(code, RING, "k1")
    parts = token.split(".")
    assert len(parts) == 4
    prefix, kid, carried_code, signature = parts
    assert prefix == "LYGV1"
    assert kid == "k1"
    assert carried_code == code
    # The signature is HMAC-SHA256 over version, key id and code, truncated to 16 bytes, base64url.
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    expected = hmac.new(K1, f"LYGV1|k1|{code}".encode(), hashlib.sha256).digest()[:16]
    assert raw == expected
    assert len(token) == len("LYGV1.k1.") + 11 + 1 + 22


def test_flipping_any_character_is_refused():
    code = codes.new_code()
    token = tokens.sign(code, RING, "k1")
    replacements = string.ascii_letters + string.digits + "-_."
    for position in range(len(token)):
        for replacement in replacements:
            if replacement == token[position]:
                continue
            tampered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(InvalidToken):
                tokens.verify(tampered, RING)
                pytest.fail(f"accepted tampered token at position {position}: {tampered}")


def test_truncated_or_extended_tokens_are_refused():
    token = tokens.sign(codes.new_code(), RING, "k1")
    for bad in (token[:-1], token + "A", token + ".x", token.replace(".", "|"), "", "LYGV1", token[6:]):
        with pytest.raises(InvalidToken):
            tokens.verify(bad, RING)


def test_signature_with_another_key_is_refused():
    code = codes.new_code()
    forged = tokens.sign(code, {"k1": b"attacker-key"}, "k1")
    with pytest.raises(InvalidToken):
        tokens.verify(forged, RING)


def test_signed_but_malformed_code_is_refused():
    code = codes.new_code()
    bad = code[:-1] + next(ch for ch in codes.ALPHABET if ch != code[-1])
    token = tokens.sign(bad, RING, "k1")
    with pytest.raises(InvalidToken):
        tokens.verify(token, RING)


def test_unknown_key_id_is_refused():
    code = codes.new_code()
    token = tokens.sign(code, {"k9": K1}, "k9")  # same secret, but a key id the ring does not hold
    with pytest.raises(InvalidToken) as info:
        tokens.verify(token, RING)
    assert "密钥" in info.value.message


def test_key_rotation():
    code = codes.new_code()
    old_token = tokens.sign(code, {"k1": K1}, "k1")
    rotated = {"k1": K1, "k2": K2}
    new_token = tokens.sign(code, rotated, "k2")  # k2 is now the active key
    assert new_token.split(".")[1] == "k2"
    assert new_token != old_token

    # Both verify while k1 is still in the ring.
    assert tokens.verify(old_token, rotated) == code
    assert tokens.verify(new_token, rotated) == code

    # Once k1 is retired, its tokens are refused; k2's still verify.
    retired = {"k2": K2}
    with pytest.raises(InvalidToken):
        tokens.verify(old_token, retired)
    assert tokens.verify(new_token, retired) == code


def test_kid_cannot_be_swapped_onto_another_keys_signature():
    code = codes.new_code()
    rotated = {"k1": K1, "k2": K2}
    token = tokens.sign(code, rotated, "k1")
    relabelled = token.replace("LYGV1.k1.", "LYGV1.k2.", 1)
    with pytest.raises(InvalidToken):
        tokens.verify(relabelled, rotated)


def test_looks_like_token():
    token = tokens.sign(codes.new_code(), RING, "k1")
    assert tokens.looks_like_token(token)
    assert tokens.looks_like_token(" " + token.lower())
    assert not tokens.looks_like_token(codes.new_code())
    assert not tokens.looks_like_token("LYGV2.k1.x.y")
