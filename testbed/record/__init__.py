"""The run record: one frozen pydantic model per document a run writes and per payload its steps pass on,
the paths of a run (RunLayout), typed read/write, and the JSON Schemas published from the models."""
