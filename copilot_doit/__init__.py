"""copilot-doit: AWS Copilot's `deploy` as an incremental doit pipeline with a content-addressed cache."""

__version__ = "0.1.0"
