"""Where callers import the importer API from; the implementation lives in the `siyu.data.importing` package."""

from siyu.data.importing import (
    AlreadyImported,
    BadRow,
    ImportFormatError,
    ImportRejected,
    ImportReport,
    import_file,
)

__all__ = ["AlreadyImported", "BadRow", "ImportFormatError", "ImportRejected", "ImportReport", "import_file"]
