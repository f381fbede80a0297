"""The picker: a page on which the user chooses what of their drive the product may mirror."""
