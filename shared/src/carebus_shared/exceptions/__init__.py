"""The exception store: every rejected or given-up input, kept for a person to fix and re-drive."""
