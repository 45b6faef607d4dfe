"""The export package (design §4): a BagIt bag (RFC 8493), as a folder or one ``.zip``.

``build`` names, hashes, publishes and destroys packages (the one home of what the purge
needs to remove them); ``describe`` writes what a package says about itself
(``datapackage.json``, ``index.html``); ``verify`` re-checks a package within the bounds
of ``limits``; ``bag`` holds what building and verifying share; ``handover`` records
which package the customer received.
"""
