"""The HTTP layer (FastAPI): thin routes over the plain functions of the backend."""
