"""A tiny code location for the workspace stand-in's tests; they ship a copy of this folder as the package."""
