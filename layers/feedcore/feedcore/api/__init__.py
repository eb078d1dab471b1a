"""The API contract (pydantic models), the routers and the mapping of errors to problem+json."""
