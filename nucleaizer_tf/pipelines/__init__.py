"""Orchestration over folders: read with `io`, compute with the library, write with `io`. No numerics here."""
