"""Hospital edge appliance: ingest -> deid -> store -> llm -> api."""
__version__ = "0.1.0"
