"""Helpers shared by the test modules: each test module imports from here, never from another test module."""
