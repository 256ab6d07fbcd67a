"""``ponder chat``: a client of a ponder server, not part of the server."""
