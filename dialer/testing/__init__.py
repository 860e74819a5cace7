"""Protocol-faithful peers of the telephony providers, for tests: the real client libraries talk to them."""
