"""2FA seeds of every size and shape platforms issue (RFC 4226/6238: 80 to 512 bits, SHA-1/256/512,
6 or 8 digits, 30 or 60 s, bare base32 or an otpauth://totp/ link): the live code govern shows is
the one Debian's oathtool computes at the same frozen moment, through the form, the vault, the
importer and rotation; a value govern cannot use is a form error, never a 500."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import time_machine
from sqlalchemy import select

from govern.errors import InvalidError
from govern.rotation.tasks import open_task
from govern.rotation.versions import stage_task
from govern.vault import import_apply, import_parse
from govern.vault.access import live_code, reveal
from govern.vault.models import Secret
from govern.vault.values import parse_totp
from govern.vault.versions import create_secret
from tests.factories import login, make_account, post
from tests.oathtool import oathtool_totp

#: An instant an hour ahead, 7 s into a 30 s and a 60 s period: the grants and secrets the tests make
#: at the real time are live then (a fixed date would turn them into grants of the future once passed).
FROZEN = (datetime.now(UTC) + timedelta(hours=1)).replace(second=7, microsecond=0)
SIZES = (80, 128, 160, 256, 512)
#: The seed of the issue: 80 bits, which pyotp 2.12 refuses.
SHORT_SEED = "JBSWY3DPEHPK3PXR"


def _key(bits: int) -> bytes:
    """Deterministic key bytes of ``bits`` bits (distinct per size)."""
    return hashlib.sha512(f"govern test key {bits}".encode()).digest()[: bits // 8] if bits <= 512 else b""


def _b32(key: bytes) -> str:
    return base64.b32encode(key).decode("ascii")


FORMS = {
    "upper, no padding": lambda key: _b32(key).rstrip("="),
    "upper, padded": lambda key: _b32(key),
    "lower case": lambda key: _b32(key).rstrip("=").lower(),
    "groups of four": lambda key: " ".join(re.findall(".{1,4}", _b32(key).rstrip("=").lower())),
    "otpauth, lower case and padded": lambda key: f"otpauth://totp/Acme:social?secret={quote(_b32(key).lower())}&issuer=Acme",
}


def _uri(key: bytes, algorithm: str, digits: int, period: int) -> str:
    return (f"otpauth://totp/Instagram:acme?secret={_b32(key).rstrip('=')}&issuer=Instagram"
            f"&algorithm={algorithm}&digits={digits}&period={period}")


def _live(value: str):
    with time_machine.travel(FROZEN, tick=False):
        return live_code(parse_totp(value))


# --- the parser and the live code, against oathtool -----------------------------------------------------


@pytest.mark.parametrize("bits", SIZES)
@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
@pytest.mark.parametrize("digits", [6, 8])
@pytest.mark.parametrize("period", [30, 60])
def test_live_code_equals_oathtool_for_every_size_algorithm_digits_and_period(bits, algorithm, digits, period):
    key = _key(bits)
    live = _live(_uri(key, algorithm, digits, period))
    expected = oathtool_totp(key, FROZEN, algorithm=algorithm, digits=digits, period=period)
    later = oathtool_totp(key, FROZEN + timedelta(seconds=period), algorithm=algorithm, digits=digits, period=period)
    assert (live.code, live.next_code) == (expected, later)
    assert (live.digits, live.period) == (digits, period) and live.seconds_left == period - 7


@pytest.mark.parametrize("bits", SIZES)
@pytest.mark.parametrize("form", FORMS)
def test_every_way_of_writing_a_seed_gives_oathtools_code(bits, form):
    key = _key(bits)
    params = parse_totp(FORMS[form](key))
    assert params.seed == _b32(key).rstrip("=") and (params.digits, params.period, params.algorithm) == (6, 30, "SHA1")
    assert _live(FORMS[form](key)).code == oathtool_totp(key, FROZEN)


def test_the_issues_80_bit_seed():
    assert _live(SHORT_SEED).code == oathtool_totp(base64.b32decode(SHORT_SEED), FROZEN)


@pytest.mark.parametrize(("value", "message"), [
    ("", "Enter the 2FA seed"),
    ("JBSWY3DPEHPK3PX1", "base32"),
    ("JBSWY3DP EHPK3PX!", "base32"),
    ("JBSWY3DPEHPK3", "too short"),  # 64 bits
    ("JBSWY3DPEHPK3PX", "too short|base32"),  # 75 bits: not a whole number of bytes
    (_b32(hashlib.sha512(b"x").digest() + b"\x01"), "too long"),  # 520 bits
    ("otpauth://hotp/Acme:x?secret=JBSWY3DPEHPK3PXR&counter=1", "HOTP"),
    ("otpauth://totp/Acme:x?issuer=Acme", "no secret"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&algorithm=MD5", "SHA1, SHA256 or SHA512"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&digits=7", "6 or 8 digits"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&digits=99999999999999999999", "6 or 8 digits"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&digits=six", "6 or 8 digits"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&period=15", "30 or 60 seconds"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&period=90", "30 or 60 seconds"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&period=-30", "30 or 60 seconds"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&secret=JBSWY3DPEHPK3PXR", "twice"),
    ("otpauth://totp/Steam:x?secret=JBSWY3DPEHPK3PXR&encoder=steam", "Steam"),
    ("otpauth://totp/Acme:x?secret=not-base-32!", "base32"),
    ("otpauth://yubico/Acme:x?secret=JBSWY3DPEHPK3PXR", "not a TOTP link"),
    ("otpauth://[totp/Acme:x?secret=JBSWY3DPEHPK3PXR", "could not be read"),
])
def test_values_govern_cannot_use_are_a_message_that_never_quotes_them(value, message):
    with pytest.raises(InvalidError, match=message) as caught:
        parse_totp(value)
    assert caught.value.reasons.keys() == {"value"}
    assert "JBSWY3DP" not in caught.value.message


# --- through the vault -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "algorithm", "digits", "period"), [
    (80, "SHA1", 6, 30), (128, "SHA256", 8, 30), (160, "SHA1", 8, 60), (256, "SHA256", 6, 60), (512, "SHA512", 8, 60),
])
def test_a_stored_seed_keeps_its_parameters_and_shows_oathtools_code(db, world, ring, ctx, bits, algorithm, digits, period):
    key = _key(bits)
    secret = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="totp",
                           label="2FA", value=_uri(key, algorithm, digits, period))
    db.commit()
    with time_machine.travel(FROZEN, tick=False):
        shown = reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="sign in",
                       mfa_fresh=True, what="totp_code")
    assert shown.live.code == oathtool_totp(key, FROZEN, algorithm=algorithm, digits=digits, period=period)
    seed = reveal(db, actor=world.it.user, keyring=ring, secret=secret, reason="new phone", mfa_fresh=True,
                  what="totp_seed")
    assert (seed.totp.seed, seed.totp.algorithm, seed.totp.digits, seed.totp.period) == (
        _b32(key).rstrip("="), algorithm, digits, period)


def _code_on_page(html: str) -> str:
    match = re.search(r'<code id="secret-value" class="totp-code"[^>]*>(\d+)</code>', html)
    assert match, "no live code on the page"
    return match.group(1)


def test_the_web_form_vaults_an_80_bit_seed_and_its_reveal_shows_oathtools_code(app, db, world, ring):
    with time_machine.travel(FROZEN, tick=False):
        client = app.test_client()
        login(client, db, world.it)
        created = post(client, f"/vault/accounts/{world.account.id}/new",
                       {"kind": "totp", "label": "Instagram 2FA", "value": SHORT_SEED})
        assert created.status_code == 302, created.get_data(as_text=True)
        secret = db.scalars(select(Secret).where(Secret.label == "Instagram 2FA")).one()
        shown = post(client, f"/vault/secrets/{secret.id}/reveal", {"reason": "sign in"})
    assert shown.status_code == 200
    assert _code_on_page(shown.get_data(as_text=True)) == oathtool_totp(base64.b32decode(SHORT_SEED), FROZEN)


def test_a_stored_80_bit_seed_reveals(app, db, world, ring):
    with app.test_request_context():
        secret = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="totp",
                               label="Old 2FA", value=SHORT_SEED.lower())
    db.commit()
    with time_machine.travel(FROZEN, tick=False):
        client = app.test_client()
        login(client, db, world.publisher)
        shown = post(client, f"/vault/secrets/{secret.id}/reveal", {"reason": "sign in"})
    assert shown.status_code == 200
    assert _code_on_page(shown.get_data(as_text=True)) == oathtool_totp(base64.b32decode(SHORT_SEED), FROZEN)


@pytest.mark.parametrize(("value", "message"), [
    ("JBSWY3DPEHPK3", "too short"),
    ("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXR&digits=7", "6 or 8 digits"),
    ("otpauth://hotp/Acme:x?secret=JBSWY3DPEHPK3PXR&counter=3", "HOTP"),
])
def test_bad_seeds_in_the_web_form_are_form_errors(app, db, world, ring, value, message):
    client = app.test_client()
    login(client, db, world.it)
    response = post(client, f"/vault/accounts/{world.account.id}/new", {"kind": "totp", "label": "2FA", "value": value})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and re.search(message, page) and "JBSWY3DP" not in page
    assert db.scalar(select(Secret.id)) is None


BITWARDEN_2FA = (
    "folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\n"
    f",,login,Instagram @acme,,,0,https://www.instagram.com/acme,acme,BW-PASS-1,{SHORT_SEED.lower()}\n"
    ",,login,X news,,,0,https://x.com/acme_news,acme_news,BW-PASS-2,"
    f"otpauth://totp/X:acme_news?secret={SHORT_SEED}&algorithm=SHA256&digits=8&period=60&issuer=X\n"
    ",,login,X old,,,0,https://x.com/acme_old,acme_old,BW-PASS-3,"
    f"otpauth://totp/X:acme_old?secret={SHORT_SEED}&digits=7\n"
).encode()


def test_bitwarden_import_takes_80_bit_seeds_and_otpauth_links_and_skips_unusable_ones(db, kit, world, ring):
    instagram = make_account(db, platform="instagram", handle="acme", url="https://www.instagram.com/acme")
    make_account(db, platform="x", handle="acme_news", url="https://x.com/acme_news")
    make_account(db, platform="x", handle="acme_old", url="https://x.com/acme_old")
    db.commit()
    report = import_apply.apply_import(db, import_parse.parse_file(BITWARDEN_2FA, "bitwarden"), actor=world.it.user, keyring=ring)
    db.commit()
    assert report.created_by_kind == {"password": 2, "totp": 2}
    assert [(p.line, p.reason) for p in report.skipped] == [(4, "2FA codes must have 6 or 8 digits.")]
    key = base64.b32decode(SHORT_SEED)
    for label, expected in (("Instagram @acme (2FA)", oathtool_totp(key, FROZEN)),
                            ("X news (2FA)", oathtool_totp(key, FROZEN, algorithm="SHA256", digits=8, period=60))):
        secret = db.scalars(select(Secret).where(Secret.label == label)).one()
        with time_machine.travel(FROZEN, tick=False):
            shown = reveal(db, actor=world.it.user, keyring=ring, secret=secret, reason="check", mfa_fresh=True,
                           what="totp_code")
        assert shown.live.code == expected, label
    assert db.scalars(select(Secret).where(Secret.label == "Instagram @acme (2FA)")).one().account_id == instagram.id


def test_rotation_stages_an_80_bit_seed_with_a_current_code_from_it(db, kit, world, ring, ctx):
    secret = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="totp",
                           label="2FA", value="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    db.commit()
    task = open_task(db, actor=world.it.user, secret=secret, reason="manual", note="new phone").task
    db.commit()
    new = f"otpauth://totp/Acme:x?secret={SHORT_SEED}&algorithm=SHA512&digits=8&period=60"
    key = base64.b32decode(SHORT_SEED)
    with time_machine.travel(FROZEN, tick=False):
        with pytest.raises(InvalidError, match="does not match"):
            stage_task(db, actor=world.it.user, keyring=ring, task=task, value=new,
                       totp_code=oathtool_totp(key, FROZEN, digits=8, period=60))  # SHA-1: the wrong digest
        db.rollback()
        code = oathtool_totp(key, FROZEN, algorithm="SHA512", digits=8, period=60)
        stage_task(db, actor=world.it.user, keyring=ring, task=task, value=new, totp_code=code)
    db.commit()
    assert task.status == "staged"
