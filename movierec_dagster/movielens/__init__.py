"""MovieLens: the archive and the typed tables built from it."""
