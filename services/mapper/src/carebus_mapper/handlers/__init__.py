"""The mapper's use cases: the mapping stage, preview, and shadow replay."""
