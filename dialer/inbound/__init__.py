"""The inbound line: a patient calls the programme's number."""
