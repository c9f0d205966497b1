"""Credential-pair bans on token endpoints: a stage of the enforcement pipeline.

``watch``: which rule watches a request and the keyed pair it carries; its ban checks
go into the request's one counter-store call. ``stage``: what the pipeline does with
the store's answer (a ban the store lost, a ban lifted while the store was down) and
with the view's status afterwards (failure counting). ``rows``: the ban rows, the
truth operators see and lift.
"""
