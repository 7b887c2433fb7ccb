"""How the scheduling adapter is driven:

- subscribers.py (JetStream)
- http.py (Litestar routes)
- mllp.py (the SIU listener)
- cli.py
"""
