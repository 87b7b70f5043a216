"""One module per shell noun."""
