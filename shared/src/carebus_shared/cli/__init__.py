"""The `carebus` command: devstack, provision, status, run, exceptions, contracts."""
