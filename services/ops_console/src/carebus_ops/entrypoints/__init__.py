"""How the ops console is driven:

- subscribers.py (its own JetStream durables)
- http.py (Litestar routes)
- cli.py
"""
