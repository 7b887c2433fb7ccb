"""Pure business logic of the mapper: no I/O, no framework imports."""
