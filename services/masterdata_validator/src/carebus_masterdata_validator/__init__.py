"""carebus master-data validator.

The system of record for providers, locations, departments, services, payers and cost
centres; validates and enriches every event's references.
"""
