"""Notifications: Graph's webhook batches turned into sync requests, and the subscriptions that make Graph send them."""
