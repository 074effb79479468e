"""The composition root: configuration, the CLI, and (in later issues) the async runtime,
the HTTP server and the outbox worker. Only this package names concrete implementations."""
