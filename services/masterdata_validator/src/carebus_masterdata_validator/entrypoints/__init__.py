"""How the master-data validator is driven:

- subscribers.py (JetStream)
- http.py (Litestar routes)
- cli.py
"""
