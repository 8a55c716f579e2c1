"""The console's pages, one module per page (or pair of pages)."""
