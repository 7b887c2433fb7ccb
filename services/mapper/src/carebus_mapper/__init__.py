"""carebus mapper.

Turns validated events into balanced ERP journal entries by versioned mapping rules.
"""
