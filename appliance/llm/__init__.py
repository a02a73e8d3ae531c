"""The model: integrity check, engine, prompt, and the one-at-a-time summary worker."""
