"""Nurse presence and commands that any process can serve (stored, notified)."""
