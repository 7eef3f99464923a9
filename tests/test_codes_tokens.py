"""Voucher codes (check character) and signed QR tokens (HMAC, key ring), as really typed and scanned at
the counter (full-width, stray whitespace), and the counter page never reusing a previous amount."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.config import parse_key_ring
from voucher.core import keyed_mac
from voucher.core.errors import InvalidToken
from voucher.core.keyed_mac import HMAC_SM3, MacKey
from voucher.ledger.models import Posting
from voucher.merchants.models import Redemption
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


# HMAC-SM3 keys (the 商用密码 option) --------------------------------------------------------------

SM3_RING = {"s1": MacKey(K1, HMAC_SM3)}


def test_sm3_token_round_trip_and_signature():
    code = codes.new_code()
    token = tokens.sign(code, SM3_RING, "s1")
    assert tokens.verify(token, SM3_RING) == code
    signature = token.split(".")[3]
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert raw == keyed_mac.digest(SM3_RING["s1"], f"LYGV1|s1|{code}".encode())[:16]
    assert raw != hmac.new(K1, f"LYGV1|s1|{code}".encode(), hashlib.sha256).digest()[:16]


def test_a_token_verifies_only_under_the_algorithm_it_was_signed_with():
    """Same key id, same secret: an SM3 token is refused by a SHA-256 ring and the other way round."""
    code = codes.new_code()
    sha_ring = {"s1": K1}
    with pytest.raises(InvalidToken, match="签名校验失败"):
        tokens.verify(tokens.sign(code, SM3_RING, "s1"), sha_ring)
    with pytest.raises(InvalidToken, match="签名校验失败"):
        tokens.verify(tokens.sign(code, sha_ring, "s1"), SM3_RING)


def test_rotation_from_a_sha256_key_to_an_sm3_key():
    """A ring parsed from the environment: the old SHA-256 key keeps its vouchers valid while the new
    SM3 key signs; once the old key leaves the ring its tokens are refused."""
    code = codes.new_code()
    before = parse_key_ring("k1:first-signing-key-0123456789")
    old_token = tokens.sign(code, before, "k1")
    rotated = parse_key_ring("k1:first-signing-key-0123456789,k2:hmac-sm3:second-signing-key-abcdefghij")
    new_token = tokens.sign(code, rotated, "k2")
    assert tokens.verify(old_token, rotated) == tokens.verify(new_token, rotated) == code
    retired = parse_key_ring("k2:hmac-sm3:second-signing-key-abcdefghij")
    assert tokens.verify(new_token, retired) == code
    with pytest.raises(InvalidToken):
        tokens.verify(old_token, retired)


def test_the_app_signs_with_an_sm3_active_key(app, db, monkeypatch):
    from voucher.vouchers import services

    ring = parse_key_ring("k1:first-signing-key-0123456789,k2:hmac-sm3:second-signing-key-abcdefghij")
    monkeypatch.setitem(app.config, "QR_SIGNING_KEYS", ring)
    monkeypatch.setitem(app.config, "QR_ACTIVE_KEY_ID", "k2")
    world = make_world()
    _, release = make_campaign(world)
    voucher = claim_one(release, make_citizen())
    token = services.qr_token(voucher)
    assert token.split(".")[1] == "k2"
    assert tokens.verify(token, {"k2": ring["k2"]}) == voucher.code
    assert services.code_from_input(token) == voucher.code  # the counter takes it
    with pytest.raises(InvalidToken):
        tokens.verify(token, {"k2": bytes(ring["k2"])})  # the same secret as HMAC-SHA256


def test_looks_like_token():
    token = tokens.sign(codes.new_code(), RING, "k1")
    assert tokens.looks_like_token(token)
    assert tokens.looks_like_token(" " + token.lower())
    assert not tokens.looks_like_token(codes.new_code())
    assert not tokens.looks_like_token("LYGV2.k1.x.y")


# What a scanner or a cashier really types ---------------------------------------------------------
# A Chinese IME left on types full-width letters, digits and dashes; copies from a chat or a document
# bring ideographic, no-break and zero-width spaces and line breaks. All are folded away before the
# check character or the signature is tested; a wrong character or an altered token is still refused.

def fullwidth(text: str) -> str:
    """Text as a Chinese IME in full-width mode types it: ＡＢＣＤ－ＥＦＧＨ, with ideographic spaces."""
    return "".join("\u3000" if ch == " " else chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def test_fullwidth_helper():
    assert fullwidth("ABCD-EFGH-JKM") == "ＡＢＣＤ－ＥＦＧＨ－ＪＫＭ"
    assert fullwidth("a b.9") == "ａ\u3000ｂ．９"


def test_normalise_folds_fullwidth_spaces_invisibles_and_dashes():
    code = codes.new_code()
    grouped = codes.display(code)
    assert codes.normalise(fullwidth(grouped)) == code
    assert codes.normalise(fullwidth(grouped.lower())) == code
    assert codes.normalise(fullwidth(code[:4] + " " + code[4:8] + " " + code[8:])) == code
    assert codes.normalise("\u3000" + code[:4] + "\u3000\u3000" + code[4:] + "\u3000") == code
    assert codes.normalise("\ufeff" + code[:2] + "\u200b" + code[2:6] + "\u2060\u200c\u200d\u00ad" + code[6:]) == code
    assert codes.normalise(code[:4] + "\u00a0" + code[4:8] + "\n" + code[8:] + "\r\n\t") == code
    for dash in "－—–‐‑‒―−﹣﹘":
        assert codes.normalise(code[:4] + dash + code[4:8] + dash * 2 + code[8:]) == code, hex(ord(dash))


def test_normalise_folds_only_dash_like_characters():
    code = codes.new_code()
    # The kana prolonged sound mark looks like a dash but is a letter; wave dashes are not dashes either.
    for not_a_dash in "ー〜～_/":
        assert not codes.is_well_formed(codes.normalise(code[:4] + not_a_dash + code[4:])), hex(ord(not_a_dash))


def test_clean_keeps_case_for_tokens():
    token = tokens.sign(codes.new_code(), RING, "k1")
    assert codes.clean(token) == token
    assert codes.clean(fullwidth(token)) == token
    assert codes.clean(token[:20] + " \u3000\u200b\n" + token[20:]) == token
    assert codes.clean(token.replace(".", "。")) == token  # the IME's full stop
    assert codes.clean("a-Ｂ\tc") == "a-Bc"


def test_a_wrong_character_typed_in_fullwidth_is_still_caught():
    code = codes.new_code()
    typo = code[:3] + ("2" if code[3] != "2" else "3") + code[4:]
    assert not codes.is_well_formed(codes.normalise(fullwidth(codes.display(typo))))


# ... through the counter page and the real redemption path (on both databases).

@pytest.fixture
def counter(client, db, app):
    """A 满100减20 voucher claimed by a citizen, its QR token, and `post` to the counter page as the cashier."""
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    voucher = claim_one(release, make_citizen())
    token = tokens.sign(voucher.code, app.config["QR_SIGNING_KEYS"], app.config["QR_ACTIVE_KEY_ID"])
    client.post("/login", data={"username": "cashier", "password": PASSWORD})

    def post(code: str, amount: str):
        return client.post("/counter", data={"code": code, "order_amount": amount, "idempotency_key": ""})

    return voucher, token, post


def _redeemed(response) -> bool:
    page = response.get_data(as_text=True)
    return response.status_code == 200 and "核销成功" in page and "优惠 ¥20.00" in page


def _refused_with(response, message: str) -> bool:
    page = response.get_data(as_text=True)
    return response.status_code == 422 and "未核销" in page and message in page


def _ledger_untouched(db) -> tuple[int, int]:
    return db.session.scalar(select(func.count(Posting.id))), db.session.scalar(select(func.count(Redemption.id)))


TYPED_CODES = {
    "fullwidth-grouped": lambda c: fullwidth(codes.display(c)),
    "fullwidth-lower": lambda c: fullwidth(codes.display(c).lower()),
    "ideographic-spaces": lambda c: "\u3000" + c[:4] + "\u3000" + c[4:8] + "\u3000" + c[8:] + "\u3000",
    "fullwidth-with-ideographic-spaces": lambda c: fullwidth(c[:4] + " " + c[4:8] + " " + c[8:]),
    "zero-width": lambda c: "\ufeff" + c[:3] + "\u200b" + c[3:7] + "\u200b\u2060" + c[7:],
    "dash-variants": lambda c: c[:4] + "—" + c[4:8] + "–" + c[8:],
    "line-breaks-and-tabs": lambda c: c[:4] + "\t" + c[4:8] + "\r\n" + c[8:] + "\n",
}


@pytest.mark.parametrize("typed", list(TYPED_CODES.values()), ids=list(TYPED_CODES))
def test_a_code_as_really_typed_redeems(counter, db, typed):
    voucher, _, post = counter
    assert _redeemed(post(typed(voucher.code), "150"))


TYPED_TOKENS = {
    "inner-space": lambda t: t[:25] + " " + t[25:],
    "inner-line-break": lambda t: t[:30] + "\n" + t[30:],
    "crlf-in-signature": lambda t: t[:-8] + "\r\n" + t[-8:],
    "ideographic-space": lambda t: t[:12] + "\u3000" + t[12:],
    "zero-width": lambda t: "\ufeff" + t[:18] + "\u200b" + t[18:],
    "fullwidth": fullwidth,
    "ime-full-stops": lambda t: t.replace(".", "。"),
}


@pytest.mark.parametrize("scanned", list(TYPED_TOKENS.values()), ids=list(TYPED_TOKENS))
def test_a_token_with_stray_whitespace_or_fullwidth_characters_redeems(counter, db, scanned):
    _, token, post = counter
    assert _redeemed(post(scanned(token), "150"))


def test_an_altered_token_is_still_refused_as_a_forgery(counter, db, app):
    voucher, token, post = counter
    before = _ledger_untouched(db)
    prefix, kid, code, signature = token.split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    other = code[:-1] + ("2" if code[-1] != "2" else "3")
    # A letter's case in the signature is significant: swapping it is an alteration, not a typing slip.
    swapped_case = next(i for i, ch in enumerate(signature) if ch.isalpha())
    case_swapped = signature[:swapped_case] + signature[swapped_case].swapcase() + signature[swapped_case + 1:]
    for altered in (
        f"{prefix}.{kid}.{code}.{flipped}",
        f"{prefix}.{kid}.{code}.{flipped[:10]} {flipped[10:]}",  # altered and with a space
        fullwidth(f"{prefix}.{kid}.{code}.{flipped}"),  # altered and typed full-width
        f"{prefix}.{kid}.{other}.{signature}",
        f"{prefix}.{kid}.{code}.{case_swapped}",
        tokens.sign(voucher.code, {kid: b"not-the-real-key"}, kid).replace(".", " .\u3000", 1),
    ):
        assert _refused_with(post(altered, "150"), "签名校验失败"), altered
    assert _ledger_untouched(db) == before


def test_a_wrong_check_character_is_still_refused_however_typed(counter, db):
    voucher, _, post = counter
    before = _ledger_untouched(db)
    code = voucher.code
    typo = code[:5] + ("2" if code[5] != "2" else "3") + code[6:]
    for typed in (typo, fullwidth(codes.display(typo)), "\u3000" + typo[:4] + "\u200b" + typo[4:] + "\n",
                  code[:4] + "ー" + code[4:]):
        assert _refused_with(post(typed, "150"), "校验位不符"), typed
    assert _ledger_untouched(db) == before


# The counter page never hands the previous customer's amount to the next scan -------------------

def _amount_input(page: str) -> str:
    (tag,) = re.findall(r'<input[^>]*name="order_amount"[^>]*>', page)
    return tag


def _focus(page: str) -> tuple[str, bool, bool]:
    """(the form's data-focus, whether the code box has autofocus, whether the amount box has it)."""
    form_focus = re.search(r'id="redeem-form" data-focus="([^"]*)"', page).group(1)
    (code_tag,) = re.findall(r'<input[^>]*name="code"[^>]*>', page)
    return form_focus, "autofocus" in code_tag, "autofocus" in _amount_input(page)


REFUSALS = {
    # (code, amount, message): a mistyped code at 8,000 yuan, a threshold miss, an amount that does not parse
    "wrong-check-character": (lambda v, t: v.code[:-1] + ("2" if v.code[-1] != "2" else "3"), "8000", "校验位不符"),
    "below-threshold": (lambda v, t: t, "99", "未达到使用门槛"),
    "forged-token": (lambda v, t: t[:-1] + ("A" if t[-1] != "A" else "B"), "150", "签名校验失败"),
    "bad-amount": (lambda v, t: t, "12.345", "订单金额格式不正确"),
}


@pytest.mark.parametrize("refusal", list(REFUSALS.values()), ids=list(REFUSALS))
def test_a_refused_redemption_does_not_put_the_amount_back(counter, db, refusal):
    voucher, token, post = counter
    code_of, amount, message = refusal
    response = post(code_of(voucher, token), amount)
    page = response.get_data(as_text=True)
    assert "未核销" in page and message in page
    tag = _amount_input(page)
    assert 'value=""' in tag, tag
    assert f'value="{amount}"' not in page
    # The cursor waits in the code box for the next scan, whatever was refused.
    assert _focus(page) == ("code", True, False)


def test_after_a_success_the_amount_box_is_empty_and_the_code_box_waits(counter, db):
    _, token, post = counter
    page = post(token, "8000").get_data(as_text=True)
    assert "核销成功" in page
    assert 'value=""' in _amount_input(page) and 'value="8000"' not in page
    assert _focus(page) == ("code", True, False)
