"""Throwaway real servers (PostgreSQL, ...) started by the tests from Debian's binaries."""
