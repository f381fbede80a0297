"""Sign-in: the OAuth code flow with PKCE that attaches a OneDrive to a connection, and the pages a person sees on the way."""
