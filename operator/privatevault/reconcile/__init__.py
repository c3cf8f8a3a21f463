"""Pure decisions and the level-based reconcile loops, one module per kind."""
