"""Field schemas of the user-facing kinds (stub; implementation follows)."""
