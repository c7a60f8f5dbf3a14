"""The studio (``newsletter studio``): the staff's web app for composing and sending.

A second Starlette app, apart from the public one (``newsletter.web``): it never serves
the public routes, and the public app never serves it. It calls the library (draft,
render, checks, the ledgered send); the issue file stays the single source of truth.
"""
