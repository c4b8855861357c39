"""The Advoware proxy (SPEC §13): other tools call Advoware through the product with their own API keys.

`rules` decides (pure: paths, methods, headers, scrubbing), `keys` stores the callers' keys hashed in Redis,
`budget` is the proxy's share of the shared Advoware rate gate, `audit` records every call, `service`
handles one request, `wsgi` serves it in the web process, `cli` is `bitbylaw proxy …`.
See docs/advoware-proxy.md.
"""
