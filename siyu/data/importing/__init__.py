"""Import real event logs (our own schema, Taobao UserBehavior, UCI Online Retail) into the data directory.

Every importer follows the same contract so a bad file can never damage what is already there:
read the whole file, validate every row (collecting *all* bad rows with their physical line numbers),
and only then write: items and prices are upserted, the events land as one new part file, each write
atomic. A file with bad rows is rejected as a whole unless the caller asks to skip them. A manifest of
content hashes makes re-importing the same file an error instead of silently doubling the events.

Modules, in the order an import uses them: `api` (import_file), `reading` (file to text columns with
line numbers), `validation` (cell checks, bad-row collection), `formats` (registry) with one converter
per format in `events`, `taobao` and `online_retail` (each returning a `converted.Converted`), and
`writing` (manifest, lock, upserts, atomic writes). `report` holds the public result and error types.
"""

from siyu.data.importing.api import import_file
from siyu.data.importing.report import AlreadyImported, BadRow, ImportFormatError, ImportRejected, ImportReport

__all__ = ["AlreadyImported", "BadRow", "ImportFormatError", "ImportRejected", "ImportReport", "import_file"]
