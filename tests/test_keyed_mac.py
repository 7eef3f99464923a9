"""Keyed MACs by algorithm name (voucher/core/keyed_mac.py): HMAC-SM3 against the published vectors, and
HMAC-SHA256 unchanged, so tokens, audit records and identity hashes made before still verify."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from voucher.core import keyed_mac
from voucher.core.keyed_mac import HMAC_SHA256, HMAC_SM3, MacKey

# GM/T 0042-2015 Appendix D.3 (also in OpenSSL's test/recipes/30-test_evp_data/evpmac_sm3.txt).
SM3_VECTORS = [
    (bytes(range(1, 33)), b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" * 2,
     "ca05e144ed05d1857840d1f318a4a8669e559fc8391f414485bfdf7bb408963a"),
    (bytes(range(1, 38)), b"\xcd" * 50, "220bf579ded555393f0159f66c99877822a3ecf610d1552154b41d44b94db3ae"),
]


@pytest.mark.parametrize(("key", "message", "expected"), SM3_VECTORS)
def test_hmac_sm3_known_answers(key, message, expected):
    assert keyed_mac.hexdigest(MacKey(key, HMAC_SM3), message) == expected
    incremental = keyed_mac.new(MacKey(key, HMAC_SM3))
    incremental.update(message[:7])
    incremental.update(message[7:])
    assert incremental.finalize().hex() == expected


def test_a_plain_key_is_hmac_sha256_as_before():
    for key in (b"dev-only-insecure-audit-mac-key", MacKey(b"dev-only-insecure-audit-mac-key")):
        assert keyed_mac.hexdigest(key, b"message") == hmac.new(
            b"dev-only-insecure-audit-mac-key", b"message", hashlib.sha256).hexdigest()
    assert keyed_mac.hexdigest(MacKey(b"k", HMAC_SM3), b"m") != keyed_mac.hexdigest(b"k", b"m")


def test_mac_key_equality_includes_the_algorithm():
    assert MacKey(b"secret") == b"secret" and b"secret" == MacKey(b"secret")
    assert MacKey(b"secret", HMAC_SM3) != b"secret"
    assert MacKey(b"secret", HMAC_SM3) != MacKey(b"secret", HMAC_SHA256)
    assert MacKey(b"secret", HMAC_SM3) == MacKey(b"secret", HMAC_SM3)
    assert "secret" not in repr(MacKey(b"secret", HMAC_SM3))
    with pytest.raises(ValueError):
        MacKey(b"secret", "hmac-md5")


def test_equal_is_a_plain_comparison_that_takes_any_text():
    assert keyed_mac.equal("abc", "abc") and not keyed_mac.equal("abc", "abd")
    assert not keyed_mac.equal("签名", "abc")  # a scanned token may hold anything: no TypeError
