"""A sample product that integrates onedrive-mirror: see app.py."""
