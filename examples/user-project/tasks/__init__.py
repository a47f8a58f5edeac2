"""This project's own Nornir tasks (a package named `tasks`, as in most Nornir projects; hardnir's are elsewhere)."""
