"""Pure business logic of the ERP poster: no I/O, no framework imports."""
