"""This project's own runbooks (a package named `runbooks`, which must not hide hardnir's)."""
