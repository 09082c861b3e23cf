"""The pure domain: Stripe events in, Trackdesk decisions out; no Flask, database or network."""

# The longest external CID the bridge stores (identities, links, conversions: 255-character
# columns). Here, in the package's lightest module: `bridge.tokens` checks it in merchants' apps.
MAX_EXTERNAL_CID_LENGTH = 255
