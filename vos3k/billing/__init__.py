"""Rating and prepaid/postpaid accounts, pure and Decimal throughout."""
