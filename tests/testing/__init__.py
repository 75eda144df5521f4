"""Tests of the fake OpenAI server, ``anyoai.testing``, itself."""
