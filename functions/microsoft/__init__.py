"""Microsoft: HTTP to Graph and the identity platform (transport, retries, typed errors) and the wire types parsed at the edge."""
