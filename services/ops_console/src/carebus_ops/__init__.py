"""carebus ops console.

Follows every stream through durables of its own (never in the pipeline's path), keeps each
business entity's journey and links in PostgreSQL, answers traces, and turns its tables and
JetStream's consumer state into per-site business and technical metrics.
"""
