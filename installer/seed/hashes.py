"""The forms a seed's secrets are kept in: the operator's password as Better Auth's hash, the
fallback password as sha512-crypt, the Wi-Fi password as its WPA PSK.

One place for them because three rooms need them: the installer seals its seed copy with them
(`installer.seed.sealed`), first boot sets them, adopt compares a new seed's values with them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from installer.seed.net_rules import is_raw_psk

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 16384, 16, 1, 64
_SCRYPT_MAXMEM = 2 * 128 * SCRYPT_N * SCRYPT_R * SCRYPT_P  # as Better Auth's own maxmem


def _better_auth_key(password: str, salt_hex: str) -> bytes:
    # Better Auth hands the salt to scrypt as the hex *string* (its UTF-8 bytes), not decoded
    return hashlib.scrypt(
        unicodedata.normalize("NFKC", password).encode(),
        salt=salt_hex.encode(),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=_SCRYPT_MAXMEM,
    )


def hash_better_auth_password(password: str) -> str:
    """Better Auth's default password hash: `saltHex:keyHex`, scrypt N=16384 r=16 p=1 dkLen=64
    over the NFKC-normalised password, salt = 16 random bytes as 32 lowercase hex characters."""
    salt_hex = secrets.token_bytes(16).hex()
    return f"{salt_hex}:{_better_auth_key(password, salt_hex).hex()}"


def verify_better_auth_password(password: str, stored: str) -> bool:
    """Whether `stored` (Better Auth's `saltHex:keyHex`) is the hash of `password`."""
    salt_hex, _, key_hex = stored.partition(":")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        return False
    if not salt_hex or not key:
        return False
    return hmac.compare_digest(_better_auth_key(password, salt_hex), key)


def hash_system_password(password: str) -> str:
    """sha512-crypt, accepted by `chpasswd -e` and every PAM on Debian."""
    from passlib.hash import sha512_crypt

    return str(sha512_crypt.hash(password))


PSK_ROUNDS = 4096


def derive_psk(password: str, ssid: str) -> str:
    """The WPA PSK for a passphrase on a network, as 64 hex digits (`wpa_passphrase`'s psk=);
    a WIFI_PASSWORD that is already the raw key is returned as it is."""
    if is_raw_psk(password):
        return password.lower()
    key = hashlib.pbkdf2_hmac(
        "sha1", password.encode("ascii"), ssid.encode("utf-8"), PSK_ROUNDS, dklen=32
    )
    return key.hex()
