"""Inbound channels (SPEC §12): website leads and 3CX telephony, from the shim through queue `leads` into EspoCRM.

See docs/inbound-channels.md for the decisions and the modules' roles.
"""
