"""The programme: patients, mailings, waves, the rules of when to call, reports.

Knows nothing of telephony; `dialer` builds on it, never the reverse.
"""
