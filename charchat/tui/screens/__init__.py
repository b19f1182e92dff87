"""Screens of the charchat app. Each module is imported when its screen is first opened."""
