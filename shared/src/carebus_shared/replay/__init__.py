"""`carebus replay`: re-drive a window of a stream through one stage, and the record of
every replay (schema carebus_replay). See docs/decisions/015."""
