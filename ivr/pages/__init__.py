"""The web pages for managers, auditors and admins (/manage, /audit, /try): sessions, forms, templates."""
