"""The two models of every run, in the order every document lists them (no LightGBM import: light steps use it)."""

ROLES = ("control", "candidate")
