"""Who may log in to the consoles, with which role."""
