"""Widgets of the charchat app."""
