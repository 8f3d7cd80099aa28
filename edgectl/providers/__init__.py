"""Provider kinds: one module per kind behind the contract in base.py, loaded by name when used."""
