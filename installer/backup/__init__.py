"""Backups, restore onto a new box and factory reset (DESIGN §9, issue 24)."""
