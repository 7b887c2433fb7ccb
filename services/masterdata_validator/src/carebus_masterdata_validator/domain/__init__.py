"""Pure business logic of the master-data validator: no I/O, no framework imports."""
