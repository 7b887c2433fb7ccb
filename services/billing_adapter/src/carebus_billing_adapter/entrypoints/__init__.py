"""How the billing adapter is driven:

- subscribers.py (JetStream)
- http.py (Litestar routes)
- mllp.py (the DFT listener)
- inbox.py (the 835 folder)
- cli.py
"""
