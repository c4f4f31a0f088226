"""`govern sso`: identity providers and who must sign in through them."""

from __future__ import annotations

from typing import Any

import click
from flask import g
from flask.cli import with_appcontext


def _session() -> Any:
    from govern.db import get_session

    g.audit_actor_label = "cli"
    return get_session()


@click.command("add-provider")
@click.argument("slug")
@click.option("--name", required=True, help="Shown on the sign-in button: Sign in with NAME.")
@click.option("--issuer", required=True, help="The issuer URL (discovery reads ISSUER/.well-known/openid-configuration).")
@click.option("--client-id", required=True)
@click.option("--secret-env", required=True, help="The environment variable that holds the client secret.")
@click.option("--domains", default="", help="Space-separated email domains accepted (empty: any).")
@click.option("--groups-claim", default="groups", show_default=True)
@with_appcontext
def add_provider(slug: str, name: str, issuer: str, client_id: str, secret_env: str, domains: str, groups_claim: str) -> None:
    """Add an OpenID Connect provider; its redirect URI is GOVERN_BASE_URL/login/sso/SLUG/callback."""
    from flask import current_app

    from govern.errors import GovernError
    from govern.sso.services import create_provider

    session = _session()
    try:
        provider = create_provider(session, actor=None, slug=slug, name=name, issuer=issuer, client_id=client_id,
                                   client_secret_env=secret_env, allowed_domains=domains, groups_claim=groups_claim)
    except GovernError as exc:
        reasons = getattr(exc, "reasons", None) or {}
        raise click.ClickException(" ".join([exc.message, *reasons.values()])) from None
    session.commit()
    click.echo(f"added {provider.slug}; register this redirect URI at the provider: "
               f"{current_app.config['BASE_URL']}/login/sso/{provider.slug}/callback")


@click.command("require")
@click.option("--everyone", is_flag=True, help="Every user must sign in through SSO.")
@click.option("--role", "roles", multiple=True, help="Holders of this app role must (repeatable).")
@click.option("--break-glass", "break_glass", default="", help="Email of the one admin who may still use a password.")
@with_appcontext
def require(everyone: bool, roles: tuple[str, ...], break_glass: str) -> None:
    """Refuse password sign-in to everyone, or to the holders of some app roles."""
    from sqlalchemy import select

    from govern.auth.models import User
    from govern.errors import GovernError
    from govern.sso.services import set_requirement

    session = _session()
    glass_id = None
    if break_glass:
        glass_id = session.scalar(select(User.id).where(User.email == break_glass.strip().lower()))
        if glass_id is None:
            raise click.ClickException(f"no user {break_glass}")
    try:
        set_requirement(session, actor=None, required_for_all=everyone, required_roles=list(roles), break_glass_user_id=glass_id)
    except GovernError as exc:
        raise click.ClickException(exc.message) from None
    session.commit()
    click.echo("SSO required for " + ("everyone" if everyone else (", ".join(roles) or "nobody")))
