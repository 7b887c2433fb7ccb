"""How the mapper is driven:

- subscribers.py (JetStream)
- http.py (Litestar routes)
- cli.py
"""
