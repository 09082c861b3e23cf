"""The pure domain: Stripe events in, Trackdesk decisions out; no Flask, database or network."""

# The longest external CID the bridge stores (identities, links, conversions: 255-character
# columns). Here, in the package's lightest module: `bridge.tokens` checks it in merchants' apps.
MAX_EXTERNAL_CID_LENGTH = 255


def is_utf8(text: str) -> bool:
    """Tell whether `text` encodes as UTF-8 (JSON's escapes can spell lone surrogates)."""
    if text.isascii():  # nearly every id and field: no encoding needed
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
