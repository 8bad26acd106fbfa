"""`derivanim serve`: the local web page and its JSON API.

store.py keeps the jobs in SQLite in the data folder; workers.py fills and renders them in worker processes;
app.py is the ASGI app (FastAPI) that the page and any other client talk to; templates/ and static/ are the page,
with KaTeX vendored so that nothing loads from the internet.
"""
