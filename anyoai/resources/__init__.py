"""The API's resources, one module per family, named as in the official SDK."""
