"""Tokens: the vault that keeps each connection's tokens encrypted at rest, refreshed and rotated."""
