"""Groups from the identity provider: SCIM /Groups and the groups claim of single sign-on."""
