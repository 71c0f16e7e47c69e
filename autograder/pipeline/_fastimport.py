"""Skip an optional import that costs a second in every grading process.

``jsonschema`` (used by nbformat) imports ``rfc3987_syntax`` when installed,
to check the "iri" string format; that module compiles a grammar at import
time (about a second, several under load), in the command and in each
worker. Notebook validation never uses that format, so the module is marked
as absent before nbformat is imported. Import this module first.
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)
