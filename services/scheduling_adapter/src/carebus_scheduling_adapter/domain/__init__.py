"""Pure business logic of the scheduling adapter: no I/O, no framework imports."""
