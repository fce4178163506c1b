"""The store: tables, repositories, the group-commit writer, the account lease and migrations."""
