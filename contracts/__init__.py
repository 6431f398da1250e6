"""Deterministic validation rules per entry kind: pure functions over state."""
