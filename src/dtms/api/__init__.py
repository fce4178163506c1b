"""The HTTP edge: FastAPI app factory, routes, schemas and the error envelope."""
