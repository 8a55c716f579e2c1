"""TPC-H fixtures (filled in by the warehouse module's work)."""
