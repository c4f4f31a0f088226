"""Single sign-on through the organisation's OpenID Connect identity provider."""
