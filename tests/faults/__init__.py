"""Fault injection against a real server: what a caller sees, what is left behind."""
