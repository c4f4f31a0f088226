"""Shared by the vault's tests: sample exports of password managers, and helpers for imports and stored rows."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

from sqlalchemy import LargeBinary, String, Text, func, select

from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.db import Base
from govern.vault.access import decrypt_version
from govern.vault.models import Secret, SecretVersion
from tests.factories import csrf_from, csrf_token, make_user

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

BITWARDEN = (
    "\ufefffolder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\r\n"
    'Social,1,login,Instagram @acme,"Recovery email is social@acme.example\r\nSecond line of notes",,0,'
    f"https://www.instagram.com/accounts/login/,acme,BW-PASS-1,{SEED}\r\n"
    'Social,,login,X corporate,,"Backup PIN: 4455",0,"https://x.com/acme_news,https://twitter.com/acme_news",'
    "social@acme.example,BW-PASS-2,\r\n"
    ",,login,Intranet,,,0,https://intranet.example.com/login,jdoe,BW-PASS-3,\r\n"
    ",,card,Company Visa,,,0,,,,\r\n"
    "\r\n"
    "Social,,note,Brand guidelines,Use the blue logo.,,0,,,,\r\n"
    ",,login,TikTok,,,0,https://www.tiktok.com/login,social@acme.example,BW-PASS-4,\r\n"
    ",,login,LinkedIn page,,,0,https://www.linkedin.com/company/acme-corp/,admin@acme.example,BW-PASS-5,\r\n"
).encode()

ONEPASSWORD_8 = (
    "Title,Url,Username,Password,OTPAuth,Favorite,Archived,Tags,Notes\n"
    "Facebook Page,https://www.facebook.com/acme.official,social@acme.example,OP-PASS-1,"
    f"otpauth://totp/Facebook:acme?secret={SEED}&issuer=Facebook&digits=6&period=30,false,false,social,\n"
    'YouTube,https://www.youtube.com/@AcmeTV,acme.brand@gmail.com,OP-PASS-2,,false,false,,"Brand account\nowner: Jane"\n'
    "Old X,https://x.com/acme_news,old@acme.example,OP-OLD,,false,true,,\n"
).encode()

ONEPASSWORD_7 = (
    b'"title","website","username","password","notes","type"\n'
    b'"Facebook Page","https://facebook.com/acme.official/","social@acme.example","OP7-PASS","","Login"\n'
    b'"Office wifi","","","OP7-WIFI","","Wireless Router"\n'
)

KEEPASS = (
    '"Group","Title","Username","Password","URL","Notes","TOTP","Icon","Last Modified","Created"\n'
    '"Root/Social","Bluesky","acme.bsky.social","KP-PASS-1","https://bsky.app/profile/acme.bsky.social","","","0",'
    '"2026-11-01T10:00:00Z","2026-01-01T10:00:00Z"\n'
    '"Root/Social","Mastodon","acme","KP-PASS-2","https://mastodon.social/auth/sign_in","Müller’s account ✓",'
    f'"otpauth://totp/mastodon.social:acme?secret={SEED}&period=30&digits=6&issuer=mastodon.social","0","",""\n'
    '"Root/Recycle Bin","Old Instagram","acme","KP-OLD","https://instagram.com","","","0","",""\n'
).encode()

GENERIC = (
    b"account,platform,kind,label,login,value,expires_at\n"
    b'@acme,instagram,recovery_codes,Instagram recovery codes,,"1111-2222 3333-4444\n5555-6666",\n'
    b"https://x.com/acme_news,,api_token,X API token,,GEN-TOKEN-1,2027-01-31\n"
    b"newbrand,pinterest,password,Pinterest login,hello@acme.example,GEN-PASS-1,\n"
    b"nobody,,password,Mystery,,GEN-PASS-2,\n"
    b"@acme,instagram,totp,Instagram 2FA,,not a seed,\n"
    b"@acme,instagram,sms,Instagram text,,123,\n"
)



def it_user(db: Any, kit: Any) -> Any:
    """A user with the IT role."""
    return make_user(db, kit, roles=("it",))


def count_rows(db: Any) -> tuple[int, int, int, int]:
    """Secrets, versions, accounts and audit events in the database."""
    db.expire_all()
    return (db.scalar(select(func.count()).select_from(Secret)) or 0,
            db.scalar(select(func.count()).select_from(SecretVersion)) or 0,
            db.scalar(select(func.count()).select_from(Account)) or 0,
            db.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def stored_value(db: Any, ring: Any, who: Any, secret: Secret) -> Any:
    """The value of a secret's only version, decrypted (codes as a list)."""
    version = db.scalars(select(SecretVersion).where(SecretVersion.secret_id == secret.id)).one()
    payload = decrypt_version(db, actor=who.user, keyring=ring, version=version)
    if "codes" in payload:
        return [c["code"] for c in payload["codes"]]
    return payload.get("seed") or payload.get("value")


def upload_export(client: Any, path: str, content: bytes, token_page: str = "/vault/import", **fields: Any) -> Any:
    """Post ``content`` as the uploaded export to ``path``."""
    token = csrf_token(client, token_page)
    data = {"csrf_token": token, "file": (io.BytesIO(content), "export.csv"), **fields}
    return client.post(path, data=data, content_type="multipart/form-data")


def confirm_import(client: Any, preview_html: str, content: bytes, fmt: str, create: list[str] | None = None) -> Any:
    """Confirm the previewed import, choosing the same file again."""
    sha = re.search(r'name="sha256" type="hidden" value="([0-9a-f]{64})"', preview_html)
    assert sha, "no digest on the preview"
    data = {"csrf_token": csrf_from(preview_html), "format": fmt, "sha256": sha.group(1),
            "file": (io.BytesIO(content), "export.csv"), "create": create or []}
    return client.post("/vault/import/confirm", data=data, content_type="multipart/form-data")


def encodings(text: str) -> list[bytes]:
    """The forms a value may take in a database or a page: raw, lower-case, base64, hex, base32."""
    raw = text.encode()
    forms = [raw, raw.lower(), base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode(),
             raw.hex().upper().encode(), base64.b32encode(raw)]
    return [f for f in forms if len(f) >= 8]


def all_stored_values(db) -> list[tuple[str, bytes]]:
    """Every text and binary value of every table, found from the metadata (no hand list)."""
    found = []
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String | Text | LargeBinary)]
        if not columns:
            continue
        for row in db.execute(select(*columns)):
            for column, value in zip(columns, row, strict=True):
                if value is not None:
                    found.append((f"{table.name}.{column.name}", value if isinstance(value, bytes) else str(value).encode()))
    return found

