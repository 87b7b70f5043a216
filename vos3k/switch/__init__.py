"""Protocol-neutral switching: call model, admission, routing, numbers, end reasons."""
