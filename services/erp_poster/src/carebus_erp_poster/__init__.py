"""carebus ERP poster.

Posts journal entries to the ERP exactly once in effect.
"""
