"""The pipeline's stages: each a pure transform plus a thin read/write `run` function."""
